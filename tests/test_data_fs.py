"""data.fs: local paths, S3 options from the AWS environment, one-line storage errors."""

import os

import pyarrow.fs as pafs
import pytest

from data import fs
from data.errors import DataError


def s3_options(uri: str) -> tuple[tuple[str, str, str], str]:
    """(endpoint_override, scheme, region) of the S3 filesystem ``uri`` resolves to, and the path."""
    filesystem, path = fs.resolve(uri)
    assert isinstance(filesystem, pafs.S3FileSystem)
    options = filesystem.__reduce__()[1][0]
    return (options["endpoint_override"], options["scheme"], options["region"]), path


def test_local_paths_resolve_to_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    filesystem, path = fs.resolve("shards")
    assert isinstance(filesystem, pafs.LocalFileSystem) and path == os.path.join(tmp_path, "shards")


def test_s3_endpoint_and_region_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    options, path = s3_options("s3://bucket/cifar/shards/")
    assert path == "bucket/cifar/shards"
    assert options == ("127.0.0.1:9000", "http", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://minio.example:9443")  # the S3-specific one wins
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    options, _ = s3_options("s3://bucket")
    assert options == ("minio.example:9443", "https", "us-west-2")


@pytest.mark.parametrize(
    "error, expected",
    [
        (FileNotFoundError("Path does not exist 'b/k'"), "not found"),
        (
            OSError("When reading 'k': AWS Error ACCESS_DENIED during HeadObject operation: No response body."),
            "access denied; check the AWS credentials and endpoint (When reading 'k': AWS Error ACCESS_DENIED",
        ),
        (OSError("line one\nline two"), "line one line two"),
    ],
)
def test_describe_gives_one_plain_line(error, expected):
    assert fs.describe(error).startswith(expected) and "\n" not in fs.describe(error)


def test_read_bytes_names_a_missing_file(tmp_path):
    filesystem, root = fs.resolve(tmp_path)
    with pytest.raises(DataError, match=r"^shown/name: not found$"):
        fs.read_bytes(filesystem, fs.join(root, "missing"), "shown/name")
    (tmp_path / "there").write_bytes(b"abc")
    assert fs.read_bytes(filesystem, fs.join(root, "there"), "x").to_pybytes() == b"abc"
