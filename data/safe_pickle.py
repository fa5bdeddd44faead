"""Unpickle CIFAR-10's python batches without letting a pickle run code.

A pickle can name any importable callable and have the unpickler call it (``os.system`` included), so
CIFAR files from the internet are read with an unpickler that resolves only the few globals CIFAR's
files hold: numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``). Everything else in
those files (dicts, lists, ints, byte strings) is built by pickle opcodes that call nothing.
"""

import io
import pickle

import numpy as np

from data.errors import DataError

# The function numpy's own ndarray.__reduce__ names (numpy.core.multiarray._reconstruct in numpy 1,
# numpy._core.multiarray._reconstruct in numpy 2); taken from numpy itself so no module is imported by name.
_RECONSTRUCT = np.empty(0).__reduce__()[0]

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy 1 (CIFAR's own)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("refused persistent id")


def loads(payload: bytes | memoryview, where: str) -> object:
    """Unpickle ``payload`` (a CIFAR-10 python batch; ``where`` names it in errors); refuse any other global."""
    try:
        # encoding="bytes": CIFAR's files are Python 2 pickles whose str objects are byte strings.
        return _CifarUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as e:  # a malformed pickle can raise nearly anything; none of it may escape as a crash
        raise DataError(f"{where}: not a CIFAR-10 pickle ({type(e).__name__}: {e})") from None
