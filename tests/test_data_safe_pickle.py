"""CIFAR's pickles load; a pickle that names anything else is refused before it can run."""

import os
import pickle

import numpy as np
import pytest

from data.errors import DataError
from data.safe_pickle import loads
from tests.fixtures_data import batch_pickle, python2_pickle


class RunsShell:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_python2_cifar_batch_loads_with_bytes_keys():
    pixels = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = loads(batch_pickle(pixels, np.array([3, 9]), "training batch 1 of 5"), "data_batch_1")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"labels"] == [3, 9] and batch[b"batch_label"] == b"training batch 1 of 5"
    assert batch[b"data"].dtype == np.uint8 and np.array_equal(batch[b"data"], pixels)


def test_the_fixture_pickle_looks_like_cifars_own():
    payload = python2_pickle({b"data": np.zeros((1, 3072), np.uint8)})
    assert payload.startswith(b"\x80\x02")  # protocol 2, as Python 2's cPickle wrote
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in payload
    assert b"numpy._core" not in payload and b"_codecs" not in payload


def test_a_batch_pickled_by_numpy_2_loads():
    array = np.arange(12, dtype=np.uint8).reshape(2, 6)
    payload = pickle.dumps({b"data": array}, protocol=4)
    assert b"numpy._core.multiarray" in payload
    assert np.array_equal(loads(payload, "x")[b"data"], array)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"data": RunsShell(str(marker))}, protocol=protocol)  # str key: no _codecs global
    with pytest.raises(DataError, match=r"^data_batch_1: not a CIFAR-10 pickle .*refused global (posix|os)\.system"):
        loads(payload, "data_batch_1")
    assert not marker.exists()
    os.system(f"touch {marker}")  # the payload would have worked: the refusal is what kept it from running
    assert marker.exists()


@pytest.mark.parametrize("obj", [eval, print, np.load, np.frombuffer, os.getcwd])
def test_any_other_global_is_refused(obj):
    with pytest.raises(DataError, match="refused global"):
        loads(pickle.dumps(obj, protocol=2), "x")


def test_garbage_is_a_data_error():
    with pytest.raises(DataError, match="^f: not a CIFAR-10 pickle"):
        loads(b"\x80\x02not a pickle at all", "f")
