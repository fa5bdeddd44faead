"""Fetch CIFAR-10's official python archive into a cache folder, checked by MD5."""

import contextlib
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from data.errors import DataError
from data.tree import file_digest

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
CONNECT_TIMEOUT_S = 5


def default_cache_dir() -> Path:
    return Path(os.environ.get("CIFAR_GRID_CACHE", "~/.cache/cifar-grid")).expanduser()


def fetch_official(cache_dir: str | os.PathLike | None = None) -> Path:
    """The path of a verified cifar-10-python.tar.gz in ``cache_dir``, downloading it if needed."""
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = folder / "cifar-10-python.tar.gz"
    if target.is_file() and _md5(target) == MD5:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.part-{os.getpid()}")
    try:
        _resolve_quickly(urllib.parse.urlsplit(URL).hostname or "")
        # The timeout bounds the connect and each read, so no network fails in seconds, not minutes.
        with urllib.request.urlopen(URL, timeout=CONNECT_TIMEOUT_S) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{URL}: download failed ({e}); without a network, pass a local copy as SOURCE: "
            "python -m data.prepare path/to/cifar-10-python.tar.gz (or cifar-10-batches-py/, a "
            "Kaggle folder, an image-folder tree or tar) --out DEST"
        ) from None
    digest = _md5(partial)
    if digest != MD5:
        partial.unlink()
        raise DataError(f"{URL}: downloaded file has MD5 {digest}, expected {MD5}")
    os.replace(partial, target)
    return target


def _resolve_quickly(host: str) -> None:
    """Look ``host`` up within CONNECT_TIMEOUT_S: socket timeouts do not bound DNS, and a dead resolver can
    stall getaddrinfo for tens of seconds."""
    found: list = []

    def lookup() -> None:
        with contextlib.suppress(OSError):
            found.append(socket.getaddrinfo(host, 443))

    thread = threading.Thread(target=lookup, daemon=True)  # daemon: a stuck lookup never blocks exit
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if not found:
        raise OSError(f"cannot resolve {host}")


def _md5(path: Path) -> str:
    return file_digest(path, "md5")  # the archive's published checksum is an MD5


SHARED_COPY_ENV = "CIFAR_GRID_SHARED_DATA"


def shared_jpeg_copy() -> Path:
    """The shared JPEG copy of CIFAR-10 that the real-data tests and the benchmarks read: $CIFAR_GRID_SHARED_DATA,
    else ../shared/data/cifar10-jpeg.tar.gz beside the repository (where this project's machines keep it)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
    return Path(os.environ.get(SHARED_COPY_ENV) or default).expanduser()
