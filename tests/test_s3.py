"""The data layer against a real S3 endpoint (moto on loopback, tests/s3_server.py).

Shards prepared to s3:// load exactly like the same source prepared locally; a refused credential and a
missing shard object give one clear line, not a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch
from botocore.exceptions import ClientError
from PIL import Image

import data
from data import fs as data_fs

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest can rewrite its asserts
    from tests.s3_server import AccessKey, S3Bucket

# The fixtures s3_server / s3_bucket / s3_auth (idempotent if tests/conftest.py registers it too).
pytest_plugins = ["tests.s3_server"]

REPO = Path(__file__).resolve().parents[1]
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 2
VAL_SIZE = 5  # the default (10,000) is for the real 50,000 training images


def make_imagefolder(root: Path) -> Path:
    """train/<class>/<k>.png and test/<class>/<k>.png: random 32x32 RGB images, seeded."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for name in data.CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels, "RGB").save(folder / f"{k:04d}.png")
    return root


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_imagefolder(tmp_path / "cifar-tiny")


def prepare_cli(source: Path, out: str) -> subprocess.CompletedProcess[str]:
    """``python -m data.prepare SOURCE --out OUT`` in a child process, with this test's AWS environment."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "data.prepare", str(source), "--out", out],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def assert_same_split(a: data.Split, b: data.Split) -> None:
    assert a.ids == b.ids
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)


# --- the fixture itself ---------------------------------------------------------------------------------


def test_fixture_points_the_aws_environment_at_a_fresh_bucket(s3_bucket: S3Bucket) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_bucket.endpoint_url
    assert s3_bucket.endpoint_url.startswith("http://127.0.0.1:")
    # pyarrow, through the data layer's resolver, sees the same (empty) bucket as boto3.
    filesystem, path = data_fs.resolve(s3_bucket.uri("x"))
    assert path == f"{s3_bucket.name}/x"
    with filesystem.open_output_stream(path) as f:
        f.write(b"hello")
    assert s3_bucket.keys() == ["x"]
    assert s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="x")["Body"].read() == b"hello"


def test_fixture_auth_accepts_only_its_key(s3_auth: AccessKey, s3_bucket: S3Bucket) -> None:
    assert s3_bucket.keys(key=s3_auth) == []
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        s3_bucket.keys(key=dataclasses.replace(s3_auth, secret="wrong-secret"))
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        s3_bucket.keys(key=dataclasses.replace(s3_auth, id="AKIAWRONGWRONGWRONG0"))


# --- data layer over S3 -------------------------------------------------------------------------------


def test_prepare_to_s3_then_load_equals_local(s3_bucket: S3Bucket, source: Path, tmp_path: Path) -> None:
    uri = s3_bucket.uri("shards")
    done = prepare_cli(source, uri)
    assert done.returncode == 0, done.stderr
    local = tmp_path / "local-shards"
    data.prepare(str(source), str(local))

    # The same bytes on both sides: prepare is deterministic and the upload is faithful.
    local_files = sorted(p.name for p in local.iterdir())
    assert s3_bucket.keys("shards/") == [f"shards/{name}" for name in local_files]
    for name in local_files:
        body = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=f"shards/{name}")["Body"].read()
        assert body == (local / name).read_bytes(), name

    remote, here = data.load(uri, val_size=VAL_SIZE), data.load(str(local), val_size=VAL_SIZE)
    assert remote.uri == uri
    assert (remote.classes, remote.manifest_sha256) == (here.classes, here.manifest_sha256)
    for split in ("train", "val", "test"):
        assert_same_split(getattr(remote, split), getattr(here, split))
    n_train = TRAIN_PER_CLASS * len(data.CLASSES)
    assert (len(remote.train), len(remote.val), len(remote.test)) == (
        n_train - VAL_SIZE,
        VAL_SIZE,
        TEST_PER_CLASS * len(data.CLASSES),
    )


def test_wrong_credentials_give_one_clear_line(
    s3_auth: AccessKey, s3_bucket: S3Bucket, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = s3_bucket.uri("shards")
    data.prepare(str(source), uri)  # the right key works: the server does not just refuse everything
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")

    with pytest.raises(data.DataError) as caught:
        data.load(uri, val_size=VAL_SIZE)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{uri}/manifest.json: ")
    assert "access denied" in message.lower()

    refused = prepare_cli(source, s3_bucket.uri("other"))
    assert refused.returncode == 2
    line = assert_one_line_error(refused.stderr)
    assert s3_bucket.uri("other") in line and "access denied" in line.lower()


def test_missing_shard_object_is_named(s3_bucket: S3Bucket, source: Path) -> None:
    uri = s3_bucket.uri("shards")
    data.prepare(str(source), uri)
    s3_bucket.client().delete_object(Bucket=s3_bucket.name, Key="shards/train-0.parquet")

    with pytest.raises(data.DataError) as caught:
        data.load(uri, val_size=VAL_SIZE)
    assert str(caught.value) == f"{uri}/train-0.parquet: not found"


def test_missing_manifest_is_named(s3_bucket: S3Bucket) -> None:
    uri = s3_bucket.uri("nothing-here")
    with pytest.raises(data.DataError) as caught:
        data.load(uri)
    assert str(caught.value) == f"{uri}/manifest.json: not found"


def test_s3_filesystem_reaches_the_endpoint_from_the_environment_alone(s3_bucket: S3Bucket) -> None:
    # No endpoint_override passed by hand: pyarrow's own URI resolver honours AWS_ENDPOINT_URL too, which
    # is what Ray Train/Tune use for storage_path="s3://..." when no storage_filesystem is given.
    filesystem, path = pafs.FileSystem.from_uri(s3_bucket.uri("probe"))
    with filesystem.open_output_stream(path) as f:
        f.write(b"ok")
    assert s3_bucket.keys() == ["probe"]
