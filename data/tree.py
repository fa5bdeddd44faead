"""Read a source (a folder, or a .tar / .tar.gz / .tar.bz2 / .tar.xz archive) into memory as {relative path: bytes}.

Archives are never extracted: members are read from the decompressed bytes in memory, so a hostile member
(absolute path, ``..``, a link, a device) cannot write anywhere; such members are refused outright. Hidden
files and ``__MACOSX`` folders are skipped. When everything sits under one top folder (``cifar10-jpeg/...``,
``cifar-10-batches-py/...``) that folder is stripped, so a tree and a tar of it give the same paths.
"""

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError

_DECOMPRESSORS = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
# What a source may hold, checked before it is trusted: CIFAR-10 is 60,000 images, 180 MB as the official
# batches and about 250 MB as a tar of PNGs, so 1 GiB (read or decompressed) and 200,000 members are room
# for any copy of it and a bound on what a hostile archive can make this process allocate.
MAX_PLAIN_BYTES = 1 << 30
MAX_MEMBERS = 200_000

Select = Callable[[Collection[str]], Collection[str]]  # all relative paths -> those to read


@dataclass(frozen=True)
class Tree:
    path: str  # the folder or archive
    is_folder: bool
    files: dict[str, memoryview]  # relative POSIX path (top folder stripped) -> contents
    top: str  # the stripped top folder, "" if none
    sha256: str  # of the archive file; for a folder, of its selected files (see folder_sha256)

    def where(self, name: str) -> str:
        """How errors name file ``name``: its path, or ``archive:member`` inside an archive."""
        inner = f"{self.top}/{name}" if self.top else name
        return os.path.join(self.path, inner) if self.is_folder else f"{self.path}:{inner}"


def read_tree(path: str | os.PathLike, select: Select) -> Tree:
    """Read the files ``select`` picks from the folder or tar archive at ``path``.

    A folder's other files are never read (a Kaggle folder may hold gigabytes of .7z next to the PNGs).
    """
    path = Path(path)
    if path.is_dir():
        paths, top = _strip_top_folder({name: name for name in _list_folder(path)})
        chosen = sorted(select(paths))
        _check_size(sum((path / paths[name]).stat().st_size for name in chosen), str(path))
        files = {name: memoryview((path / paths[name]).read_bytes()) for name in chosen}
        return Tree(str(path), True, files, top, folder_sha256(files))
    if not path.is_file():
        raise DataError(f"{path}: does not exist")
    _check_size(path.stat().st_size, str(path))
    raw = path.read_bytes()
    members, top = _strip_top_folder(_read_tar(raw, str(path)))
    files = {name: members[name] for name in sorted(select(members))}
    return Tree(str(path), False, files, top, hashlib.sha256(raw).hexdigest())


def _check_size(size: int, where: str) -> None:
    if size > MAX_PLAIN_BYTES:
        raise DataError(f"{where}: {_mib(size)} of files, more than CIFAR-10 holds ({_mib(MAX_PLAIN_BYTES)} at most)")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """A file's hex digest (sha256 unless told), read in 4 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(files: dict[str, memoryview]) -> str:
    """sha256 of the sorted lines ``<relative path>\\0<file sha256>``: a folder's content, independent of mtimes."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def _skipped(parts: list[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _list_folder(root: Path) -> list[str]:
    names = []
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _skipped([d]))
        rel = Path(folder).relative_to(root)
        names += [(rel / name).as_posix() for name in sorted(files) if not _skipped([name])]
    return names


def _decompress(raw: bytes, where: str) -> bytes:
    """The archive's tar bytes, refused once they pass MAX_PLAIN_BYTES (a small .gz can inflate a thousandfold)."""
    for magic, opener in _DECOMPRESSORS.items():
        if raw.startswith(magic):
            try:
                with opener(io.BytesIO(raw)) as stream:
                    plain = stream.read(MAX_PLAIN_BYTES + 1)
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
                raise DataError(f"{where}: truncated or corrupt archive ({e})") from None
            if len(plain) > MAX_PLAIN_BYTES:
                raise DataError(f"{where}: decompresses to more than {_mib(MAX_PLAIN_BYTES)}, more than CIFAR-10 holds")
            return plain
    return raw


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _read_tar(raw: bytes, where: str) -> dict[str, memoryview]:
    plain = _decompress(raw, where)
    data = memoryview(plain)
    files: dict[str, memoryview] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:  # BytesIO shares the bytes
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise DataError(f"{where}: more than {MAX_MEMBERS:,} members, more than CIFAR-10 holds")
                name = _checked_name(member, where)
                if member.isdir() or _skipped(name.split("/")):
                    continue
                end = member.offset_data + member.size
                if end > len(data):
                    raise DataError(f"{where}: truncated archive (member {member.name} is cut off)")
                if name in files:
                    raise DataError(f"{where}: member {name} appears twice")
                files[name] = data[member.offset_data : end]
            end_of_members = tar.offset
    except tarfile.TarError as e:
        raise DataError(f"{where}: truncated or unreadable tar archive ({e})") from None
    # tarfile stops quietly at a missing or broken header; a complete archive has a zero block there.
    if data[end_of_members : end_of_members + tarfile.BLOCKSIZE] != bytes(tarfile.BLOCKSIZE):
        raise DataError(f"{where}: truncated or corrupt tar archive (no end-of-archive marker)")
    return files


def _checked_name(member: tarfile.TarInfo, where: str) -> str:
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = "a link" if member.islnk() or member.issym() else "not a regular file"
        raise DataError(f"{where}: refused member {name} ({kind})")
    if name.startswith("/") or os.path.isabs(name) or ".." in name.split("/"):
        raise DataError(f"{where}: refused member {name} (path leaves the archive)")
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _strip_top_folder(files: dict[str, object]) -> tuple[dict, str]:
    """Drop the one folder everything sits under (never a split folder); return the new mapping and it."""
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) != 1 or any("/" not in name for name in files) or tops & {"train", "test"}:
        return files, ""
    return {name.split("/", 1)[1]: value for name, value in files.items()}, tops.pop()
