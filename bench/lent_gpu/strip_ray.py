"""Repacks the Ray wheel for a lent GPU machine, which has torch but no Ray: the device tool carries at most
64 MiB and the wheel is 79 MB. Drops the Java jars, rllib, serve and llm (the grid uses none), keeps every
file's mode (gcs_server and raylet must stay executable), writes a .tar.xz of about 31 MB.

    python bench/lent_gpu/strip_ray.py ray-2.60.0-cp312-...whl .dev/ray.tar.xz
"""

import io
import sys
import tarfile
import zipfile

SKIP = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/")


def main() -> None:
    wheel, out = sys.argv[1:]
    with zipfile.ZipFile(wheel) as z, tarfile.open(out, "w:xz", preset=6) as tar:
        for info in z.infolist():
            if info.is_dir() or info.filename.startswith(SKIP):
                continue
            data = z.read(info)
            member = tarfile.TarInfo(info.filename)
            member.size = len(data)
            member.mode = (info.external_attr >> 16) & 0o777 or 0o644
            tar.addfile(member, io.BytesIO(data))


if __name__ == "__main__":
    main()
