"""prepare: the shard layout, determinism, the CLI, and what --overwrite may touch."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import data
from data import shards
from data.prepare import main
from tests.fixtures_data import synthetic, tar_folder, write_imagefolder, write_official

REPO = Path(__file__).resolve().parents[1]
SCHEMA = pa.schema([("id", pa.string()), ("split", pa.string()), ("label", pa.int8()), ("pixels", pa.binary(3072))])


@pytest.fixture(scope="module")
def official_tar(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return tar_folder(write_official(root / "src", synthetic(n_train=1000, n_test=500)), root / "cifar.tar.gz")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_shards_layout_and_manifest(official_tar, tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_ROWS", 400)
    manifest = data.prepare(official_tar, tmp_path / "out")
    out = tmp_path / "out"
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["classes"] == list(data.CLASSES)
    assert manifest["source"] == {
        "kind": "official",
        "name": "cifar.tar.gz",
        "sha256": hashlib.sha256(official_tar.read_bytes()).hexdigest(),
    }
    assert manifest["splits"] == {"train": 1000, "test": 500}
    names = ["train-0.parquet", "train-1.parquet", "train-2.parquet", "test-0.parquet", "test-1.parquet"]
    assert [s["file"] for s in manifest["shards"]] == names
    assert [s["rows"] for s in manifest["shards"]] == [400, 400, 200, 400, 100]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "manifest.json"])
    ids = []
    for shard in manifest["shards"]:
        path = out / shard["file"]
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        table = pq.read_table(path)
        assert table.schema.remove_metadata().equals(SCHEMA)
        assert set(table["split"].to_pylist()) == {shard["split"]}
        metadata = pq.ParquetFile(path).metadata
        assert metadata.num_row_groups == 1
        assert {metadata.row_group(0).column(c).compression for c in range(4)} == {"UNCOMPRESSED"}
        ids += table["id"].to_pylist()
    assert ids[:3] == ["train/00001", "train/00002", "train/00003"] and ids[-1] == "test/00500"


def test_shard_bytes_are_within_5_percent_of_the_raw_pixels(official_tar, tmp_path):
    manifest = data.prepare(official_tar, tmp_path / "out")
    shard_bytes = sum((tmp_path / "out" / s["file"]).stat().st_size for s in manifest["shards"])
    assert shard_bytes <= 1.05 * 1500 * 3072


def test_pixels_are_chw_planar_like_cifars_batches(official_tar, tmp_path):
    data.prepare(official_tar, tmp_path / "out")
    first = pq.read_table(tmp_path / "out" / "train-0.parquet")["pixels"][0].as_py()
    assert first == synthetic(n_train=1000, n_test=500).train_pixels[0].tobytes()


def test_same_source_gives_byte_identical_shards(tmp_path):
    folder = write_imagefolder(tmp_path / "tree", synthetic())
    data.prepare(folder, tmp_path / "a")
    data.prepare(tar_folder(folder, tmp_path / "tree.tar"), tmp_path / "b")
    data.prepare(folder, tmp_path / "c")
    a, b, c = (files_of(tmp_path / name) for name in "abc")
    assert a == c
    # A tar of the folder holds the same images under the same ids: only the manifest's source differs.
    assert {k: v for k, v in a.items() if k != "manifest.json"} == {k: v for k, v in b.items() if k != "manifest.json"}


def test_cli_prints_a_summary(official_tar, tmp_path, capsys):
    assert main([str(official_tar), "--out", str(tmp_path / "out")]) == 0
    assert "1000 train, 500 test images from official source cifar.tar.gz" in capsys.readouterr().out


def test_cli_error_is_one_line_exit_2_and_leaves_no_output(tmp_path, capsys):
    missing = tmp_path / "nope.tar.gz"
    assert main([str(missing), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {missing}: does not exist\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither DEST nor a staging folder


def test_python_m_data_prepare_runs_quietly(tmp_path):
    command = [sys.executable, "-m", "data.prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {tmp_path / 'nope'}: does not exist\n"  # no runpy warning, no traceback


# --- DEST handling ------------------------------------------------------------------------------------


def test_non_empty_dest_needs_overwrite(official_tar, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([str(official_tar), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {out}: not empty; pass --overwrite to replace the shards prepare wrote there\n"
    assert files_of(out) == {"notes.txt": b"mine"}


def test_empty_dest_folder_is_fine(official_tar, tmp_path):
    (tmp_path / "out").mkdir()
    data.prepare(official_tar, tmp_path / "out")
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_overwrite_replaces_only_what_prepare_wrote(official_tar, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(shards, "SHARD_ROWS", 300)
    data.prepare(official_tar, out)  # train-0..3, test-0..1
    (out / "notes.txt").write_text("mine")
    (out / "train-9.parquet").write_text("not prepare's")
    monkeypatch.setattr(shards, "SHARD_ROWS", 10_000)
    manifest = data.prepare(official_tar, out, overwrite=True)
    assert [s["file"] for s in manifest["shards"]] == ["train-0.parquet", "test-0.parquet"]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "notes.txt",
        "test-0.parquet",
        "train-0.parquet",
        "train-9.parquet",
    ]
    assert (out / "notes.txt").read_text() == "mine" and (out / "train-9.parquet").read_text() == "not prepare's"
    assert len(data.load(out, val_size=100).train) == 900


def test_overwrite_never_replaces_a_file_prepare_did_not_write(official_tar, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-0.parquet").write_text("someone else's")
    with pytest.raises(data.DataError, match=r"train-0.parquet: exists and was not written by prepare"):
        data.prepare(official_tar, out, overwrite=True)
    assert files_of(out) == {"train-0.parquet": b"someone else's"}


def test_overwrite_refuses_a_manifest_pointing_outside_dest(official_tar, tmp_path):
    out = tmp_path / "out"
    data.prepare(official_tar, out)
    victim = tmp_path / "victim.parquet"
    victim.write_text("keep me")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["file"] = "../victim.parquet"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(data.DataError, match="manifest.json: bad shard entry"):
        data.prepare(official_tar, out, overwrite=True)
    assert victim.read_text() == "keep me"


def test_failed_prepare_leaves_existing_output_alone(official_tar, tmp_path):
    out = tmp_path / "out"
    data.prepare(official_tar, out)
    before = files_of(out)
    with pytest.raises(data.DataError):
        data.prepare(tmp_path / "missing.tar", out, overwrite=True)
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_prepare_then_load_round_trip(official_tar, tmp_path):
    data.prepare(official_tar, tmp_path / "out")
    loaded = data.load(tmp_path / "out", val_size=0)
    source = synthetic(n_train=1000, n_test=500)
    assert len(loaded.val) == 0
    assert np.array_equal(loaded.test.images.reshape(500, 3072).numpy(), source.test_pixels)
