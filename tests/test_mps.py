"""grid.experiment.mps: the MPS daemon's life around a grid. No GPU here, so `nvidia-cuda-mps-control` is a
stand-in script on PATH that records how it was called (the real one only starts a daemon and takes `quit` on stdin)."""

import os
import stat

import pytest

from grid.cli import main
from grid.experiment import mps
from grid.experiment.spec import GridError

FAKE = """#!/bin/sh
echo "args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY stdin=$(cat -)" >> "{log}"
[ -d "$CUDA_MPS_PIPE_DIRECTORY" ] || exit 3
exit {code}
"""


def fake_control(tmp_path, monkeypatch, code: int = 0):
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    script = bin_dir / mps.CONTROL
    script.write_text(FAKE.format(log=log, code=code))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_daemon_starts_with_private_folders_and_quits(tmp_path, monkeypatch):
    log = fake_control(tmp_path, monkeypatch)
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    with mps.daemon() as env:
        pipe = env["CUDA_MPS_PIPE_DIRECTORY"]
        assert os.path.isdir(pipe) and os.environ["CUDA_MPS_PIPE_DIRECTORY"] == pipe  # a Ray started here inherits it
        assert pipe != "/tmp/nvidia-mps"  # not the machine-wide default: other CUDA programs are left alone
    start, stop = log.read_text().splitlines()
    assert start.startswith(f"args=-d pipe={pipe} ")
    assert stop.startswith(f"args= pipe={pipe} ") and stop.endswith("stdin=quit")
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ and not os.path.exists(pipe)


def test_daemon_quits_when_the_grid_fails(tmp_path, monkeypatch):
    log = fake_control(tmp_path, monkeypatch)
    with pytest.raises(RuntimeError), mps.daemon():
        raise RuntimeError("a trial failed")
    assert log.read_text().splitlines()[-1].endswith("stdin=quit")


def test_a_daemon_that_fails_to_start_is_a_one_line_error(tmp_path, monkeypatch):
    fake_control(tmp_path, monkeypatch, code=1)
    with pytest.raises(GridError, match=r"nvidia-cuda-mps-control -d failed"), mps.daemon():
        pass


def test_missing_control_binary_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GridError, match="not on PATH"), mps.daemon():
        pass


@pytest.mark.parametrize("extra", [["--address", "auto"], ["--device", "cpu"]])
def test_mps_only_for_a_local_gpu_grid(extra, tmp_path, capsys):
    code = main(["--mps", "--preset", "smoke", "--out", str(tmp_path / "run"), "--data", str(tmp_path), *extra])
    assert code != 0
    assert "--mps starts CUDA MPS on this machine" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written
