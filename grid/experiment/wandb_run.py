"""One W&B run per training, logged from the rank-0 Ray Train worker with plain `wandb.init`.

Not Ray's `setup_wandb` (broken under Train V2) nor `WandbLoggerCallback`. W&B is a side channel: a
failure (no network, bad key, service down) never stops a training and never stalls it more than a few
seconds (`init_timeout`, `finish_timeout`). An online run that cannot start falls back to an offline run
with the same id in the grid's wandb folder (`fallback` says why, for the grid's output and `wandb sync`);
any other failure is warned about once and the run becomes a no-op.

Resuming: a training's run id is derived from (grid name, training id) and opened with resume="allow",
and every epoch is logged at W&B step = epoch. A resumed training logs only the epochs its run does not
hold yet (online: what the resumed run reports; offline: the epoch the training's checkpoint recorded as logged),
so steps keep increasing across restarts and `wandb sync` of all folders gives one run, each epoch once.
A training whose run fell back to offline stays offline when it resumes: synced later, its offline epochs
come before the resumed ones, as W&B needs them (it drops steps lower than a run's last).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from grid.wandb_settings import WandbSettings, redact, resolved_mode, wandb_dir

log = logging.getLogger(__name__)
_open_runs = 0  # runs this process has open: a pack's members each have one, and teardown waits for the last


def run_id(group: str, training_id: str) -> str:
    """Stable W&B run id of a training within a grid: 16 hex characters (valid W&B id characters)."""
    return hashlib.sha256(f"{group}\0{training_id}".encode()).hexdigest()[:16]


def _scrubbed(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with any occurrence of the API key masked: a config is uploaded and kept forever."""
    text = json.dumps(dict(config), default=str)
    return json.loads(redact(text)) if redact(text) != text else dict(config)


class WandbRun:
    """A training's W&B run. Every method is safe to call in any state and never raises."""

    def __init__(
        self,
        run: Any = None,
        *,
        label: str = "",
        logged_epoch: int = 0,
        run_dir: Path = Path("."),
        fallback: str = "",
    ) -> None:
        self._run = run  # None: disabled, failed or finished
        self._label = label
        self._run_dir = Path(run_dir)
        self._logged_epoch = logged_epoch  # the run holds every epoch up to this one
        self._warned = False
        self.fallback = fallback  # why an online run is logged offline instead ("" when it is not)

    @property
    def active(self) -> bool:
        return self._run is not None

    @property
    def logged_epoch(self) -> int:
        return self._logged_epoch

    @classmethod
    def start(
        cls,
        settings: WandbSettings,
        *,
        training_id: str,
        name: str,
        group: str,
        config: Mapping[str, Any],
        tags: Iterable[str],
        run_dir: Path,
        history: Iterable[Mapping[str, Any]] = (),
        logged_epoch: int = 0,
        fallback: str = "",
    ) -> WandbRun:
        """Opens (or resumes) the training's run; `history` is the training's epochs so far (from its
        checkpoint), of which those the run lacks are logged now: past `logged_epoch` (what the checkpoint
        recorded as logged) and past what a resumed online run holds. `run_dir`: the training's folder, which
        relative paths given to finish() start from. `fallback`: why an earlier attempt of this training went
        offline (from its checkpoint): it stays offline."""
        mode = resolved_mode(settings)
        if mode == "disabled":
            return cls()
        rid, label = run_id(group, training_id), f"{name} ({training_id})"
        run_args = dict(
            name=name, group=group, tags=list(tags), config={"training_id": training_id, **_scrubbed(config)}
        )
        try:
            folder = wandb_dir(settings)
            run, fallback = init_or_offline(settings, mode, rid, folder, fallback, label, **run_args)
            done = max(logged_epoch, _epochs_in_resumed_run(run))
        except Exception as e:  # noqa: BLE001 - any W&B failure must leave the training running
            cls(label=label)._fail("start", e)
            return cls()
        global _open_runs
        _open_runs += 1
        self = cls(run, label=label, logged_epoch=done, run_dir=run_dir, fallback=fallback)
        for metrics in history:
            self.log_epoch(metrics)
        return self

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        """Logs one epoch's metrics at step = epoch; an epoch the run already holds is skipped."""
        if self._run is None:
            return
        try:
            epoch = int(metrics["epoch"])
            if epoch > self._logged_epoch:
                self._run.log(dict(metrics), step=epoch)
                self._logged_epoch = epoch
        except Exception as e:  # noqa: BLE001
            self._fail("log", e)

    def finish(self, summary: Mapping[str, Any], files: Iterable[Path] = (), *, exit_code: int = 0) -> None:
        """Puts `summary` in the run's summary, attaches `files` (relative to run_dir; a .png also as a
        wandb.Image in the summary under its stem; a missing file is skipped) and closes the run, waiting
        at most finish_timeout for the upload."""
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.summary.update(dict(summary))
            for path in (self._run_dir / f for f in files):
                if path.is_file():  # a diverged training may have no predictions to show
                    _attach(run, path, self._run_dir)
        except Exception as e:  # noqa: BLE001
            self._fail("finish", e)  # and still close the run, so that it is not left running
        global _open_runs
        _open_runs -= 1
        try:
            run.finish(exit_code=exit_code)
            if run.settings.mode == "offline" and _open_runs == 0:
                # The only copy until synced: wandb-core writes the file asynchronously, and its service
                # exits only once every record is on disk.
                import wandb

                wandb.teardown()
        except Exception as e:  # noqa: BLE001
            self._fail("finish", e)

    def _fail(self, where: str, error: Exception) -> None:
        global _open_runs
        if self._run is not None:  # dropped, not finished: it no longer holds teardown back
            _open_runs -= 1
        self._run = None
        if not self._warned:
            self._warned = True
            log.warning(
                "W&B %s failed for %s, training goes on without W&B: %s",
                where,
                self._label,
                redact(f"{type(error).__name__}: {error}".splitlines()[0]),
            )


def init_or_offline(
    settings: WandbSettings, mode: str, rid: str, folder: Path, fallback: str, label: str, warn: bool = True, **run: Any
) -> tuple[Any, str]:
    """(the run, why it is offline though online was asked for, or ""): online first unless an earlier
    attempt fell back; an online start that fails is retried offline with the same id (warned about
    unless not `warn`: the caller says so itself)."""
    if mode == "online" and not fallback:
        try:
            return _init(settings, mode, rid, folder, **run), ""
        except Exception as e:  # noqa: BLE001 - no network, bad key, server down: keep the curves offline
            # Without the run id, the reasons of a grid's runs compare equal (the grid prints each once).
            fallback = redact(" ".join(f"{type(e).__name__}: {e}".split())).replace(rid, "<id>")[:200]
            import wandb

            wandb.teardown()  # the failed run's stream still holds the id in this process's wandb service
    if mode == "online" and warn:
        log.warning("W&B online failed for %s (%s); logging offline to %s for `wandb sync`", label, fallback, folder)
    return _init(settings, "offline" if mode == "online" else mode, rid, folder, **run), fallback


def _init(settings: WandbSettings, mode: str, rid: str, folder: Path, **run: Any) -> Any:
    # wandb reports its own errors to the W&B server at process exit, which holds a worker's exit 10+ s
    # when that server is down; opt in with WANDB_ERROR_REPORTING=true.
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    import wandb  # here, not at the top: a disabled grid never pays for importing wandb

    run = {"job_type": "train", **run}

    return _with_step_metric(
        wandb.init(
            project=settings.project,
            entity=settings.entity,
            id=rid,
            resume="allow",
            mode=mode,
            dir=folder.parent,
            **run,  # wandb writes into dir/wandb, i.e. `folder`
            settings=wandb.Settings(
                init_timeout=settings.init_timeout,
                finish_timeout=settings.finish_timeout,
                use_dot_wandb=False,
                console="off",  # Ray already captures the worker's output
                x_disable_stats=True,  # no system-metrics sampler running beside every training
                disable_git=True,
                disable_code=True,
                save_code=False,  # the caller's config holds the commit
                symlink=False,  # copies / hard links: the run folder can move before `wandb sync`
                reinit="create_new",  # a pack's members log to their runs side by side
                silent=True,
            ),
        )
    )


def _with_step_metric(run: Any) -> Any:
    run.define_metric("epoch")
    run.define_metric("*", step_metric="epoch")
    return run


def _epochs_in_resumed_run(run: Any) -> int:
    """The last epoch an online run resumed from the server holds (its steps are epochs); 0 otherwise."""
    if not run.resumed:
        return 0
    return max(int(run.summary.get("epoch") or 0), run.starting_step - 1, 0)


def _attach(run: Any, path: Path, run_dir: Path) -> None:
    """Saves the file into the run's files (as its path under run_dir, else its name), a .png also as an
    image in the summary."""
    base = run_dir if path.resolve().is_relative_to(run_dir.resolve()) else path.parent
    run.save(str(path), base_path=str(base), policy="now", glob=False)
    if path.suffix.lower() == ".png":
        import wandb

        run.summary[path.stem] = wandb.Image(str(path))
