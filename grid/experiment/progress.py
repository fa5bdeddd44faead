"""Compact progress instead of Ray's default flood: a line per training state change, and a periodic
status line (done / running / pending, best so far, ETA)."""

from __future__ import annotations

import time

from ray.tune import Callback


class Progress(Callback):
    def __init__(
        self, epochs_by_training: dict[str, int], *, every_s: float = 30.0, resumed_from: dict[str, int] | None = None
    ) -> None:
        """`resumed_from`: epochs already in the checkpoints of trainings that continue (--resume)."""
        self.epochs = epochs_by_training  # target epochs of each pending training
        self.done_epochs: dict[str, int] = dict(resumed_from or {})
        self.first_epochs = sum(self.done_epochs.values())  # the ETA counts this session's pace only
        self.state: dict[str, str] = dict.fromkeys(epochs_by_training, "pending")
        self.best: tuple[float, str] | None = None
        self.every_s = every_s
        self.start = self.last_status = time.monotonic()
        self.trial_seconds: dict[str, list[float]] = {}  # training -> [start, end] (wall clock, time.time())

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", flush=True)  # sys.stdout at call time: Tune pickles callbacks

    def _set(self, trial, state: str, detail: str = "") -> None:
        name = trial.config["training"]
        self.state[name] = state
        self._say(f"{name}: {state}{detail}")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.trial_seconds[trial.config["training"]] = [time.time(), float("nan")]
        self._set(trial, "running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        name, epoch = trial.config["training"], int(result.get("epoch", 0))
        self.done_epochs[name] = epoch
        acc = result.get("test_acc")
        if acc is not None and (self.best is None or acc > self.best[0]):
            self.best = (acc, f"{name}@{epoch}")
        status = result.get("status")
        if status in ("failed", "diverged"):
            self._set(trial, status, f": {result.get('error', '')}")
        elif acc is not None:
            self._say(f"{name}: epoch {epoch}/{self.epochs[name]} test_acc {acc:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial)
        if self.state.get(trial.config["training"]) not in ("failed", "diverged"):
            self._set(trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial)
        error = str(getattr(trial, "error_msg", "") or "").strip().splitlines()
        self._set(trial, "failed", f": {error[-1] if error else 'see the trial log'}")

    def _ended(self, trial) -> None:
        times = self.trial_seconds.get(trial.config["training"])
        if times:
            times[1] = time.time()

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if now - self.last_status >= self.every_s:
            self.last_status = now
            self._say(self.status_line(now))

    def status_line(self, now: float) -> str:
        states = ("done", "running", "pending", "failed", "diverged")
        counts = {s: list(self.state.values()).count(s) for s in states}
        total = sum(self.epochs.values())
        done = sum(min(self.done_epochs.get(n, 0), e) for n, e in self.epochs.items())
        trained = done - self.first_epochs
        eta = f"{(total - done) * (now - self.start) / trained / 60:.1f} min" if trained > 0 else "unknown"
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in states[:3])
        return f"status: {parts}; epochs reported {done}/{total}; best test_acc {best}; ETA {eta}"
