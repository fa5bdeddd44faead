"""W&B integration: offline runs read back exactly, resume without duplicates, bounded failures, no key leak.

Everything runs offline against loopback: W&B's servers are never contacted. Each test points wandb's
folders (run, config, cache, data) and $HOME-derived lookups (netrc) into its tmp_path.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pytest

from grid.experiment.wandb_run import WandbRun, _epochs_in_resumed_run, run_id
from grid.report import wandb_report
from grid.wandb_settings import WandbSettings, resolved_mode, sync_command
from tests import wandb_files as wandb_history
from tests.test_verdict import README_RUN, results

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 characters, like a real key
GRID = "grid-test"
TID = "baseline-relu-paper-s0"
RID = run_id(GRID, TID)
INIT_TIMEOUT = 2.0
BOUND = INIT_TIMEOUT + 6.0  # + starting wandb's service on a slow 2-core machine


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for var in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "WANDB_ENTITY",
        "WANDB_PROJECT",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    for var, sub in (
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
        ("XDG_CACHE_HOME", "xdg-cache"),
        ("NETRC", "netrc"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    yield tmp_path
    if "wandb" in sys.modules:  # a fresh wandb service per test: its settings come from the environment
        sys.modules["wandb"].teardown()


def settings(tmp_path: Path, mode: str = "offline", **kw) -> WandbSettings:
    return WandbSettings(mode=mode, dir=tmp_path / "runs" / GRID / "wandb", init_timeout=INIT_TIMEOUT, **kw)


def epoch_metrics(epoch: int, shift: float = 0.0) -> dict:
    """A per-epoch dict as grid.train.training produces it: floats that do not print short, ints, a NaN."""
    return {
        "epoch": epoch,
        "train_loss": 2.3 / epoch + shift,
        "train_acc": 0.1 * epoch + shift,
        "val_loss": 2.0 / 3.0 + epoch + shift,
        "val_acc": 1.0 / 3.0 + 0.01 * epoch + shift,
        "test_acc": 0.5 + epoch / 1000 + shift,
        "test_acc_as_published": 0.49 + epoch / 997 + shift,
        "lr": 0.001,
        "epoch_seconds": 1.2345678901234567 * epoch,
        "eval_seconds": math.nan,
        "images_per_second": 40_000 + epoch,
    }


def start(
    tmp_path: Path,
    s: WandbSettings | None = None,
    history=(),
    config: dict | None = None,
    logged_epoch: int = 0,
    fallback: str = "",
) -> WandbRun:
    return WandbRun.start(
        s or settings(tmp_path),
        training_id=TID,
        name="baseline-relu-paper-0",
        group=GRID,
        config=config or {"arch": "baseline", "activation": "relu", "grid": GRID},
        tags=["paper", "baseline"],
        run_dir=tmp_path / "runs" / GRID / "trainings" / TID,
        history=history,
        logged_epoch=logged_epoch,
        fallback=fallback,
    )


def artifacts(tmp_path: Path) -> list[Path]:
    from PIL import Image

    folder = tmp_path / "runs" / GRID / "trainings" / TID
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), "red").save(folder / "predictions.png")
    (folder / "submission.csv").write_text("id,label\n1,cat\n2,ship\n")
    return [folder / "submission.csv", folder / "predictions.png"]


def wandb_files(tmp_path: Path) -> list[Path]:
    """The run's folders in start order."""
    folders = (tmp_path / "runs" / GRID / "wandb").glob(f"*-{RID}*")
    return sorted(folders, key=lambda f: wandb_history.read_file(f / f"run-{RID}.wandb")[0])


def records(path: Path, kind: str) -> list:
    return [
        getattr(r, kind)
        for r in wandb_history.read_records(path / f"run-{RID}.wandb")
        if r.WhichOneof("record_type") == kind
    ]


def history_steps(folder: Path) -> list[tuple[int, int]]:
    """(_step, epoch) of each history record of a run folder."""
    rows = []
    for h in records(folder, "history"):
        item = {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in h.item}
        rows.append((item["_step"], item["epoch"]))
    return rows


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "grid.experiment.wandb_run" and r.levelno >= logging.WARNING
    ]


# --- mode, ids, sync command ----------------------------------------------------------------------------


def test_resolved_mode_follows_the_configured_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auto = WandbSettings()
    assert resolved_mode(auto) == "offline"  # no key anywhere
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolved_mode(auto) == "online"
    assert resolved_mode(WandbSettings(mode="offline")) == "offline"  # an explicit mode wins
    assert resolved_mode(WandbSettings(mode="disabled")) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolved_mode(auto) == "disabled"  # the standard switch, under auto only
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY")

    netrc = tmp_path / "home" / "netrc"
    netrc.parent.mkdir(parents=True, exist_ok=True)
    netrc.write_text(f"machine example.org\n  login user\n  password {FAKE_KEY}\n")
    assert resolved_mode(auto) == "offline"  # a key for another host
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    assert resolved_mode(auto) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")  # a self-hosted server: its own key
    assert resolved_mode(auto) == "offline"
    config = tmp_path / "home" / "config"
    config.mkdir(parents=True)
    (config / "settings").write_text(f"[default]\napi_key = {FAKE_KEY}\n")
    assert resolved_mode(auto) == "online"

    with pytest.raises(ValueError, match="--wandb: unknown 'cloud'"):
        WandbSettings(mode="cloud")  # type: ignore[arg-type]


def test_sync_command_only_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = WandbSettings(dir=tmp_path / "my runs" / "g" / "wandb", entity="lab")
    assert sync_command(s) == f"wandb sync --project cifar-grid --entity lab '{tmp_path}/my runs/g/wandb'"
    assert sync_command(WandbSettings(mode="disabled", dir=tmp_path)) is None
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert sync_command(WandbSettings(dir=tmp_path)) is None  # online: nothing to sync
    assert sync_command(WandbSettings(dir=tmp_path), offline_runs=True)  # unless some runs fell back


def test_run_id_is_stable_and_valid() -> None:
    assert run_id(GRID, TID) == RID and len(RID) == 16 and set(RID) <= set("0123456789abcdef")
    assert len({run_id(GRID, TID), run_id(GRID, TID + "x"), run_id(GRID + "x", TID)}) == 3


# --- offline run: what is written equals what was logged ---------------------------------------------


def test_offline_run_reads_back_exactly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logged = [epoch_metrics(e) for e in range(1, 6)]
    config = {
        "arch": "baseline",
        "activation": "relu",
        "epochs": 5,
        "grid": GRID,
        "code_version": "abc123",
        "data_manifest_sha256": "f" * 64,
    }
    run = start(tmp_path, config=config)
    assert run.active
    for m in logged:
        run.log_epoch(m)
    csv, png = artifacts(tmp_path)
    run.finish({"best_val_acc": 0.38, "test_acc@5": 0.505}, [Path(csv.name), png, Path("missing.png")])
    assert not warnings_of(caplog)

    history = wandb_history.read_history(tmp_path / "runs" / GRID / "wandb", RID)
    pd.testing.assert_frame_equal(history, pd.DataFrame(logged), check_exact=True, check_like=True)

    (folder,) = wandb_files(tmp_path)
    assert folder.name.startswith("offline-run-")
    assert history_steps(folder) == [(e, e) for e in range(1, 6)]  # W&B step = epoch
    (rec,) = records(folder, "run")
    assert (rec.project, rec.run_group, rec.display_name, list(rec.tags)) == (
        "cifar-grid",
        GRID,
        "baseline-relu-paper-0",
        ["paper", "baseline"],
    )
    cfg = {u.key: json.loads(u.value_json) for u in rec.config.update if u.key != "_wandb"}
    assert cfg == {"training_id": TID, **config}
    metrics = {(m.name, m.glob_name, m.step_metric) for m in records(folder, "metric")}
    assert {("epoch", "", ""), ("", "*", "epoch")} <= metrics
    summary = {u.key: json.loads(u.value_json) for s in records(folder, "summary") for u in s.update if u.key}
    assert summary["best_val_acc"] == 0.38 and summary["test_acc@5"] == 0.505
    assert summary["predictions"]["_type"] == "image-file"
    assert (folder / "files" / "submission.csv").read_text() == "id,label\n1,cat\n2,ship\n"
    assert (folder / "files" / "predictions.png").is_file()


def test_reader_agrees_with_wandb_leet_inspect(tmp_path: Path) -> None:
    """wandb's own reader of the file (the `wandb leet inspect --json` CLI, where installed) sees the same."""
    run = start(tmp_path)
    logged = [epoch_metrics(e) for e in range(1, 4)]
    for m in logged:
        run.log_epoch(m)
    run.finish({}, [])
    (folder,) = wandb_files(tmp_path)
    cli = [Path(sys.executable).with_name("wandb"), "leet", "inspect", "--json", folder / f"run-{RID}.wandb"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"no usable `wandb leet inspect --json` here: {done.stderr.strip()[:200]}")
    theirs = [
        {k: float(v) if v == "NaN" else v for k, v in r["history"]["item"].items() if k[0] != "_"}
        for r in map(json.loads, done.stdout.splitlines())
        if r.get("type") == "history"
    ]
    ours = wandb_history.read_file(folder / f"run-{RID}.wandb")[1]
    pd.testing.assert_frame_equal(pd.DataFrame(ours), pd.DataFrame(theirs), check_exact=True, check_like=True)
    pd.testing.assert_frame_equal(pd.DataFrame(ours), pd.DataFrame(logged), check_exact=True, check_like=True)


def test_torn_or_corrupt_file_reads_its_intact_prefix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = start(tmp_path)
    for e in range(1, 4):
        run.log_epoch(epoch_metrics(e))
    run.finish({}, [])
    (folder,) = wandb_files(tmp_path)
    path = folder / f"run-{RID}.wandb"
    data = path.read_bytes()
    whole = wandb_history.read_file(path)[1]
    seen = set()
    for cut in range(7, len(data), 53):  # a writer that died anywhere
        path.write_bytes(data[:cut])
        rows = wandb_history.read_file(path)[1]
        assert rows == whole[: len(rows)]
        seen.add(len(rows))
    assert seen == {0, 1, 2, 3}
    assert "torn or corrupt record" in caplog.text
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    rows = wandb_history.read_file(path)[1]
    assert rows == whole[: len(rows)] and len(rows) < 3  # stops at the bad checksum
    path.write_bytes(b"not a wandb file")
    with pytest.raises(ValueError, match="not a W&B transaction log"):
        list(wandb_history.read_records(path))


# --- resume ---------------------------------------------------------------------------------------------


def test_resume_logs_each_epoch_once(tmp_path: Path) -> None:
    """Attempt 1 logs epochs 1-7 and dies; attempt 2 resumes from the epoch-5 checkpoint, which recorded 5 epochs
    as logged, and re-runs 6-7: its folder starts at 6, and the union holds every epoch (sync keeps the first
    value of a step that two folders hold; the re-run epochs are the same numbers, bit for bit on the CPU)."""
    first = start(tmp_path)
    for e in range(1, 8):
        first.log_epoch(epoch_metrics(e))
    first.finish({}, [], exit_code=1)

    checkpoint = [epoch_metrics(e) for e in range(1, 6)]
    second = start(tmp_path, history=checkpoint, logged_epoch=5)
    assert second.logged_epoch == 5  # what the checkpoint recorded
    for e in range(6, 11):
        second.log_epoch(epoch_metrics(e, shift=1.0))
    second.finish({"best_val_acc": 1.4}, [])

    old, new = wandb_files(tmp_path)
    assert history_steps(old) == [(e, e) for e in range(1, 8)]
    assert history_steps(new) == [(e, e) for e in range(6, 11)]  # steps rise within each folder
    history = wandb_history.read_history(tmp_path / "runs" / GRID / "wandb", RID)
    assert list(history["epoch"]) == list(range(1, 11))


def test_resume_backfills_what_the_run_lacks(tmp_path: Path) -> None:
    first = start(tmp_path)
    for e in range(1, 4):  # epochs 4-5 ran but never reached W&B
        first.log_epoch(epoch_metrics(e))
    first.finish({}, [], exit_code=1)
    second = start(tmp_path, history=[epoch_metrics(e) for e in range(1, 6)], logged_epoch=3)
    second.log_epoch(epoch_metrics(6))
    second.finish({}, [])
    _, new = wandb_files(tmp_path)
    assert history_steps(new) == [(4, 4), (5, 5), (6, 6)]
    history = wandb_history.read_history(tmp_path / "runs" / GRID / "wandb", RID)
    pd.testing.assert_frame_equal(
        history, pd.DataFrame([epoch_metrics(e) for e in range(1, 7)]), check_exact=True, check_like=True
    )


def test_online_resume_counts_the_epochs_the_server_holds() -> None:
    """Online, a resumed run reports its last step (= epoch) and summary; only later epochs are logged."""

    class Resumed:  # what wandb.init(resume="allow") returns for a run the server holds up to epoch 7
        resumed, starting_step, summary, logged = True, 8, {"epoch": 7}, []

        def log(self, metrics: dict, step: int) -> None:
            self.logged.append(step)

    resumed = Resumed()
    assert _epochs_in_resumed_run(resumed) == 7
    run = WandbRun(resumed, logged_epoch=_epochs_in_resumed_run(resumed))
    for e in range(1, 11):
        run.log_epoch(epoch_metrics(e))
    assert resumed.logged == [8, 9, 10]


def test_read_history_merges_folders_later_wins(tmp_path: Path) -> None:
    """Folders written by plain wandb (steps restarting at 0, overlapping epochs) merge by epoch."""
    import wandb

    root = tmp_path / "runs" / GRID
    for attempt, epochs in enumerate(([1, 2, 3], [2, 3, 4])):
        run = wandb.init(
            project="p",
            id=RID,
            dir=root,
            mode="offline",
            resume="allow",
            settings=wandb.Settings(x_disable_stats=True, console="off"),
        )
        for e in epochs:
            run.log({"epoch": e, "val_acc": 10 * attempt + e})
        run.finish()  # a folder started within the same second as the first gets a "-1" suffix
    wandb.teardown()
    for folder in wandb_files(tmp_path):  # wandb-core writes the file a moment after finish() returns
        deadline = time.monotonic() + 5
        while not wandb_history.is_closed(folder / f"run-{RID}.wandb") and time.monotonic() < deadline:
            time.sleep(0.05)
    history = wandb_history.read_history(root / "wandb", RID)
    assert history.to_dict("list") == {"epoch": [1, 2, 3, 4], "val_acc": [1, 12, 13, 14]}
    assert wandb_history.last_epoch(root / "wandb", RID) == 4
    assert wandb_history.read_history(root / "wandb", "nosuchrun").empty


# --- failures: bounded, warned once, then no-ops ---------------------------------------------------------


@pytest.fixture
def unreachable(request: pytest.FixtureRequest) -> Iterator[str]:
    """A W&B base URL that fails as requested: refused, hanging (accepts, never answers) or 401."""
    if request.param == "refused":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again: connections are refused
        yield f"http://127.0.0.1:{port}"
    elif request.param == "hanging":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            yield f"http://127.0.0.1:{s.getsockname()[1]}"
    else:

        class Unauthorized(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errors": [{"message": "invalid api key"}]}')

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Unauthorized)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_port}"
        server.shutdown()


def leet_history(folder: Path) -> list[dict]:
    """The history rows as wandb's own reader of .wandb files (`wandb leet inspect --json`) sees them."""
    cli = [Path(sys.executable).with_name("wandb"), "leet", "inspect", "--json", folder / f"run-{RID}.wandb"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=True)
    return [
        {k: float(v) if v == "NaN" else v for k, v in r["history"]["item"].items() if k[0] != "_"}
        for r in map(json.loads, done.stdout.splitlines())
        if r.get("type") == "history"
    ]


@pytest.mark.parametrize("unreachable", ["refused", "hanging", "bad_key"], indirect=True)
def test_online_failure_falls_back_to_offline_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, unreachable: str
) -> None:
    """No route to W&B, a server that never answers, a refused key: the run goes on offline with the same id,
    every epoch kept for `wandb sync`; a resumed attempt stays offline (its epochs must follow the first's)."""
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", unreachable)
    s = settings(tmp_path, mode="auto")
    assert resolved_mode(s) == "online"
    import wandb  # noqa: F401 - imported once per worker process, not part of a training's stall

    t0 = time.monotonic()
    run = start(tmp_path, s, history=[epoch_metrics(1)])
    assert time.monotonic() - t0 < BOUND + 2  # the online attempt, then an offline start
    assert run.active and run.fallback and FAKE_KEY not in run.fallback
    for e in range(2, 6):
        run.log_epoch(epoch_metrics(e))
    run.finish({"best_val_acc": 0.4}, artifacts(tmp_path))
    (warning,) = warnings_of(caplog)
    assert warning.startswith("W&B online failed for baseline-relu-paper-0") and FAKE_KEY not in warning

    t0 = time.monotonic()
    resumed = start(tmp_path, s, history=[epoch_metrics(e) for e in range(1, 6)], logged_epoch=5, fallback=run.fallback)
    assert time.monotonic() - t0 < BOUND - INIT_TIMEOUT  # straight to offline: no second online wait
    assert resumed.fallback == run.fallback
    for e in range(6, 8):
        resumed.log_epoch(epoch_metrics(e))
    resumed.finish({}, [])

    offline = [f for f in wandb_files(tmp_path) if f.name.startswith("offline-run-")]
    assert len(offline) == 2 and all(RID in f.name for f in offline)
    rows = [row for folder in offline for row in leet_history(folder)]
    pd.testing.assert_frame_equal(
        pd.DataFrame(rows), pd.DataFrame([epoch_metrics(e) for e in range(1, 8)]), check_exact=True, check_like=True
    )
    command = sync_command(s, offline_runs=True)
    assert command == f"wandb sync --project cifar-grid {tmp_path / 'runs' / GRID / 'wandb'}"
    dry = subprocess.run(
        [Path(sys.executable).with_name("wandb"), *command.split()[1:], "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Would sync 2 run(s)" in dry.stderr + dry.stdout  # the offline folders, not the failed online one


def test_failure_mid_run_disables_quietly(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:  # a wandb run whose service died
        calls = 0

        def log(self, *args, **kwargs) -> None:
            Broken.calls += 1
            raise ConnectionError("wandb-core is gone")

    run = WandbRun(Broken(), label="t")
    for e in range(1, 5):
        run.log_epoch({"epoch": e})
    run.finish({"x": 1}, [])
    assert Broken.calls == 1 and not run.active
    assert len(warnings_of(caplog)) == 1


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    run = start(tmp_path, settings(tmp_path, mode="disabled"))
    assert not run.active
    for e in range(1, 4):
        run.log_epoch(epoch_metrics(e))
    run.finish({"best_val_acc": 0.4}, [])
    assert sorted(tmp_path.rglob("*")) == before


def test_log_epoch_is_cheap(tmp_path: Path) -> None:
    run = start(tmp_path)
    run.log_epoch(epoch_metrics(1))  # the first call imports wandb's media types
    t0 = time.perf_counter()
    for e in range(2, 202):
        run.log_epoch(epoch_metrics(e))
    per_epoch = (time.perf_counter() - t0) / 200
    run.finish({}, [])
    assert per_epoch < 0.01, f"{per_epoch * 1000:.1f} ms per log_epoch"


# --- the API key never lands anywhere --------------------------------------------------------------------


def test_api_key_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    # offline with a key configured, and a config that (by mistake) carries the key
    run = start(tmp_path, settings(tmp_path, mode="offline"), config={"arch": "baseline", "token": FAKE_KEY})
    for e in range(1, 4):
        run.log_epoch(epoch_metrics(e))
    run.finish({"best_val_acc": 0.4}, artifacts(tmp_path))
    # online against a server that refuses the key
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    online = start(tmp_path, settings(tmp_path, mode="online"))
    online.log_epoch(epoch_metrics(1))
    online.finish({}, [])
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandb_report.publish(tmp_path / "runs" / GRID, None, None)
    sys.modules["wandb"].teardown()

    out, err = capfd.readouterr()
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == [] and FAKE_KEY not in out + err + caplog.text
    assert len(list(tmp_path.rglob("*.wandb"))) >= 2 and list((tmp_path / "home").rglob("*.log"))  # looked


# --- the report -----------------------------------------------------------------------------------------


def run_folder(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / GRID
    (run_dir / "tables").mkdir(parents=True)
    (run_dir / "grid.json").write_text(json.dumps({"name": GRID}))
    for name in wandb_report.PAPER_TABLES[:3]:
        (run_dir / "tables" / f"{name}.md").write_text(f"### {name}\n\n| epochs | published |\n|---|---|\n")
    results(README_RUN).to_parquet(run_dir / "results.parquet")  # the README's real baseline run
    return run_dir


def test_report_spec_offline(tmp_path: Path) -> None:
    run_dir = run_folder(tmp_path)
    path = wandb_report.publish(run_dir, None, None)  # no key: offline
    assert path == str(run_dir / "wandb_report.json")
    spec = json.loads(Path(path).read_text())
    assert (spec["project"], spec["entity"], spec["group"]) == ("cifar-grid", None, GRID)
    assert [p["y"] for p in spec["panels"]] == [
        ["test_acc"],
        ["test_acc_as_published"],
        ["val_acc"],
        ["train_loss", "val_loss"],
    ]
    assert all(p["x"] == "epoch" for p in spec["panels"])
    assert {"config.arch", "config.activation"} <= set(spec["groupby"])
    assert [t["name"] for t in spec["tables"]] == ["table_3_1", "table_3_2", "table_3_3"]
    assert spec["tables"][0]["markdown"].startswith("### table_3_1")
    assert len(spec["notes"]) == 1 and spec["notes"][0].startswith("table_3_4: not in")
    assert spec["verdict"].startswith("**Verdict (paper recipe): 2 of 3 published values")
    assert spec["results_run"] == f"{GRID}-results" and spec["media"] == ["verdict_plot", "accuracy_plot"]


def test_report_saved_form_builds_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec becomes a wandb-workspaces Report and its saved form; only the project-id lookup is faked."""
    from wandb_workspaces.reports.v2 import interface

    spec = wandb_report.report_spec(run_folder(tmp_path), "cifar-grid", "lab")
    lookups = []
    monkeypatch.setattr(interface, "_get_api", lambda: None)
    monkeypatch.setattr(
        interface,
        "execute_graphql",
        lambda api, query, variables: lookups.append(variables) or {"project": {"internalId": "P1"}},
    )
    model = wandb_report.build_report(spec, "lab")._to_model()
    saved = json.dumps(model.model_dump(by_alias=True, exclude_none=True, mode="json"))
    assert lookups == [{"entityName": "lab", "projectName": "cifar-grid"}] * 2  # the trainings' and results runsets
    for panel in wandb_report.PANELS:
        assert f'"chartTitle": "{panel.title}"' in saved
        assert f'"xAxis": "epoch", "metrics": {json.dumps(list(panel.y))}' in saved
    assert '"name": "arch.value"' in saved and '"name": "activation.value"' in saved
    assert '"value": "grid-test"' in saved  # the runs of this grid only
    assert "### table_3_2" in saved
    assert saved.count('"groupArea": "stddev"') == len(wandb_report.PANELS)  # seeds of a cell: mean ± std
    assert '"mediaKeys": ["verdict_plot", "accuracy_plot"]' in saved  # the results run's plots
    assert '"name": "jobType"}, "op": "=", "value": "train"' in saved  # curves of the trainings only
    assert (
        saved.index("Verdict: did it reproduce the paper?")
        < saved.index("mediaKeys")
        < saved.index('chartTitle": "Test')
    )
    assert "2 of 3 published values in this grid consistent with ours" in saved


def test_publish_falls_back_to_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_server(spec: dict) -> str:
        raise ConnectionError(f"api.wandb.ai unreachable (key {FAKE_KEY})")

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)  # online
    monkeypatch.setattr(wandb_report, "push", no_server)
    run_dir = run_folder(tmp_path)
    assert wandb_report.publish(run_dir, "proj", "lab") == str(run_dir / "wandb_report.json")
    assert json.loads((run_dir / "wandb_report.json").read_text())["entity"] == "lab"
    assert "W&B report not saved (ConnectionError" in caplog.text and FAKE_KEY not in caplog.text


def test_push_command_reads_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    pushed = []
    monkeypatch.setattr(wandb_report, "push", lambda spec: pushed.append(spec) or "https://wandb.ai/r")
    path = wandb_report.write_spec(run_folder(tmp_path), {"title": "t"})
    assert wandb_report.main(["push", str(path)]) == 0
    assert pushed == [{"title": "t"}] and capsys.readouterr().out == "https://wandb.ai/r\n"


def test_grid_results_artifact_and_epilogue_offline(tmp_path: Path) -> None:
    """The grid's results run holds the artifact (results, tables, plots, report.html) and the verdict in
    its summary; the epilogue names the report's spec and the sync command."""
    from grid.experiment.wandb_results import end_of_grid, results_run_name
    from grid.report import html, verdict

    run_dir = run_folder(tmp_path)
    html.build(run_dir)
    found = verdict.verdict(results(README_RUN))
    lines = end_of_grid(settings(tmp_path), GRID, run_dir, found, offline_runs=False)
    assert lines[0] == f"W&B: the grid's results (artifact {results_run_name(GRID)}) logged offline"
    assert lines[1].endswith(f"push {run_dir / 'wandb_report.json'}")
    assert lines[2].endswith(f"wandb sync --project cifar-grid {run_dir / 'wandb'}")
    rid = run_id(GRID, "grid-results")
    (folder,) = (run_dir / "wandb").glob(f"offline-run-*-{rid}")
    kinds = [r.WhichOneof("record_type") for r in wandb_history.read_records(folder / f"run-{rid}.wandb")]
    artifacts = records_of(folder, rid, "artifact")  # the verdict's wandb.Table is an artifact of its own
    (artifact,) = [a for a in artifacts if a.type == "grid-results"]
    assert "artifact" in kinds and artifact.name == f"{GRID}-results"
    paths = {e.path for e in artifact.manifest.contents}
    assert {"results.parquet", "report.html", "tables/table_3_1.md", "plots/verdict.png"} <= paths
    summary = {u.key: json.loads(u.value_json) for s in records_of(folder, rid, "summary") for u in s.update if u.key}
    assert summary["verdict"] == found.headline and summary["status/baseline/swish@100"] == "not consistent"


def records_of(folder: Path, rid: str, kind: str) -> list:
    return [
        getattr(r, kind)
        for r in wandb_history.read_records(folder / f"run-{rid}.wandb")
        if r.WhichOneof("record_type") == kind
    ]
