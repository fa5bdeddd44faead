"""Map a data spec to a shard location, preparing raw sources once per machine."""

import fcntl
import os
from pathlib import Path

from data import fs
from data.download import default_cache_dir, fetch_official
from data.prepare import prepare
from data.shards import MANIFEST
from data.sources import source_sha256


def resolve_shards(spec: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None) -> str:
    """A shard folder or URI as it is; a raw source (archive, folder) prepared once into ``cache_dir``.

    Prepared shards live in ``cache_dir/shards/<first 16 hex of the source's sha256>``. Concurrent callers
    on one machine take a lock, so one prepares while the others wait and then reuse its output.
    None means the official download (cached in ``cache_dir`` too). ``cache_dir`` None: $CIFAR_GRID_CACHE or
    ~/.cache/cifar-grid (`data.download.default_cache_dir`, the one default).
    """
    if spec is not None and (fs.is_uri(os.fspath(spec)) or Path(spec, MANIFEST).is_file()):
        return os.fspath(spec)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    source = spec if spec is not None else fetch_official(cache)
    dest = cache / "shards" / source_sha256(source)[:16]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not (dest / MANIFEST).is_file():
            prepare(source, dest, overwrite=True)
    return str(dest)
