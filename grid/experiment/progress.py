"""Compact progress instead of Ray's default flood: a line per training state change, the trainings' live
step progress (read from the progress board in the driver's Tune loop), and either a live display (on a
terminal, grid.experiment.live) or a periodic status line with a line per running training."""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from grid.experiment import eta
from grid.experiment.schedule import makespan


class Progress(Callback):
    def __init__(
        self,
        epochs_by_training: dict[str, int],
        *,
        every_s: float = 30.0,
        resumed_from: dict[str, int] | None = None,
        archs: dict[str, str] | None = None,
        board=None,
        max_concurrent: int = 1,
        live: bool = False,
        members: dict[str, list[str]] | None = None,
        epoch_seconds: dict[str, float] | None = None,
    ) -> None:
        """`resumed_from`: epochs already in the checkpoints of trainings that continue (--resume); `board`: the
        progress board actor's handle (grid.experiment.board; None for none); `live`: draw the live display;
        `members`: the trainings of each Tune trial (a pack's; by default each trial is the training of its name);
        `epoch_seconds`: seconds per epoch of each architecture estimated before the start (grid.train.estimate),
        until the trainings measure their own."""
        self.epochs = epochs_by_training  # target epochs of each pending training
        self.members = members or {name: [name] for name in epochs_by_training}
        self.done_epochs: dict[str, int] = dict(resumed_from or {})
        self.first_epochs = sum(self.done_epochs.values())  # the epoch-pace ETA counts this session's pace only
        self.state: dict[str, str] = dict.fromkeys(epochs_by_training, "pending")
        self.best: tuple[float, str] | None = None
        self.every_s = every_s
        self.start = self.last_status = time.monotonic()
        self.trial_seconds: dict[str, list[float]] = {}  # training -> [start, end] (wall clock, time.time())
        self.archs = archs or {}
        self.board, self.max_concurrent, self.live = board, max_concurrent, live
        self.updates: dict[str, dict[str, Any]] = {}  # each training's latest live progress post
        self.epoch_seconds: dict[str, float] = dict(epoch_seconds or {})  # seconds per epoch, per architecture
        self.last_poll = self.last_draw = 0.0
        self._asked = self._display = None  # the board's pending snapshot; the live display

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment's state: the actor, its reply and the display stay here.
        return {**self.__dict__, "board": None, "_asked": None, "_display": None}

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", flush=True)  # sys.stdout at call time: Tune pickles callbacks

    def _set(self, trial, state: str, detail: str = "") -> None:
        name = trial.config["training"]
        for member in self.members.get(name, [name]):
            self.state[member] = state
        self._say(f"{name}: {state}{detail}")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.trial_seconds[trial.config["training"]] = [time.time(), float("nan")]
        self._set(trial, "running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        name, epoch = trial.config["training"], int(result.get("epoch", 0))
        for member in self.members.get(name, [name]):  # a pack's members advance together
            self.done_epochs[member] = max(min(epoch, self.epochs.get(member, epoch)), self.done_epochs.get(member, 0))
        acc = result.get("test_acc")
        if acc is not None and (self.best is None or acc > self.best[0]):
            self.best = (acc, f"{name}@{epoch}")
        status = result.get("status")
        if status in ("failed", "diverged"):
            self._set(trial, status, f": {result.get('error', '')}")
        elif acc is not None:
            total = max(self.epochs.get(m, epoch) for m in self.members.get(name, [name]))
            self._say(f"{name}: epoch {epoch}/{total} test_acc {acc:.4f}")

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
        if self.board is not None:
            self._read_board(now)
        if self.live:
            if now - self.last_draw >= 0.5:
                self.last_draw = now
                self._draw()
        elif now - self.last_status >= self.every_s:
            self.last_status = now
            for line in self.status_lines(now, time.time()):
                self._say(line)

    def on_experiment_end(self, trials, **info) -> None:
        self.close()

    def close(self) -> None:
        """Stops the live display (the tables print after it)."""
        if self._display is not None:
            self._display.stop()
            self._display = None

    def _read_board(self, now: float) -> None:
        """Takes the board's snapshot once it has arrived and asks for the next one a second later; never
        waits (Tune's loop runs this callback: a slow reply would hold up the whole grid)."""
        import ray

        try:
            if self._asked is not None and ray.wait([self._asked], timeout=0)[0]:
                self.take(ray.get(self._asked))
                self._asked = None
            if self._asked is None and now - self.last_poll >= 1.0:
                self.last_poll = now
                self._asked = self.board.snapshot.remote()
        except Exception:  # noqa: BLE001 - no figures this time; the next poll tries again
            self._asked = None

    def take(self, snapshot: dict[str, dict[str, Any]], wall: float | None = None) -> None:
        """New progress posts: the first throughput figure of each training is printed as it arrives (with
        its ETA at wall-clock `wall`, default now)."""
        for name, update in snapshot.items():
            if name not in self.epochs:
                continue
            first = update.get("images_per_second") and not self.updates.get(name, {}).get("images_per_second")
            self.updates[name] = update
            self.done_epochs[name] = max(update["epoch"], self.done_epochs.get(name, 0))
            acc = update.get("test_acc")
            if acc is not None and (self.best is None or acc > self.best[0]):  # also a resumed training's
                self.best = (acc, f"{name}@{update['epoch']}")
            seconds = eta.epoch_seconds(update)
            if seconds is not None:
                self.epoch_seconds[update["arch"]] = seconds
            if first and not self.live:
                self._say(f"{name}: {self.training_line(name, time.time() if wall is None else wall)}")

    def training_line(self, name: str, now: float) -> str:
        """One running training: epochs and steps done, images/s, latest test accuracy, ETA."""
        u = self.updates[name]
        ips = u.get("images_per_second")
        acc = u.get("test_acc")
        left = eta.seconds_left(u, now)
        where = f"epoch {u['epoch']}/{u['epochs']} done"
        if u["step"]:  # within the next epoch
            where = f"epoch {u['epoch'] + 1}/{u['epochs']} step {u['step']}/{u['steps_per_epoch']}"
        return (
            f"{where}, "
            + (f"{ips:.0f} images/s" if ips else "images/s -")
            + (f", test_acc {acc:.4f}" if acc is not None else "")
            + f", ETA {_minutes(left)}"
        )

    def grid_seconds_left(self, now: float) -> float | None:
        """The grid's ETA: the schedule's wall time, from measured step throughput (or the estimates before the
        start); None while an architecture has no figure at all."""
        running, waiting = [], []
        for name, epochs in self.epochs.items():
            if self.state[name] in ("done", "failed", "diverged"):
                continue
            left = eta.seconds_left(self.updates[name], now) if name in self.updates else None
            if left is not None:
                running.append(left)
                continue
            per_epoch = eta.per_arch(self.epoch_seconds, self.archs.get(name, ""))
            if per_epoch is None:
                return None
            waiting.append((epochs - self.done_epochs.get(name, 0)) * per_epoch)
        return makespan(running, sorted(waiting, reverse=True), self.max_concurrent)  # started costliest first

    def status_lines(self, now: float, wall: float | None = None) -> list[str]:
        """The periodic status line, then a line per running training with live figures."""
        wall = time.time() if wall is None else wall
        lines = [self.status_line(now, wall)]
        for name in sorted(self.updates):
            if self.state.get(name) == "running":
                lines.append(f"  {name}: {self.training_line(name, wall)}")
        return lines

    def status_line(self, now: float, wall: float | None = None) -> str:
        states = ("done", "running", "pending", "failed", "diverged")
        counts = {s: list(self.state.values()).count(s) for s in states}
        total = sum(self.epochs.values())
        done = sum(min(self.done_epochs.get(n, 0), e) for n, e in self.epochs.items())
        measured = self.updates or self.epoch_seconds
        left = self.grid_seconds_left(time.time() if wall is None else wall) if measured else None
        if left is None:  # no step figures (yet): this session's epoch pace
            trained = done - self.first_epochs
            left = (total - done) * (now - self.start) / trained if trained > 0 else None
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in states[:3])
        return f"status: {parts}; epochs reported {done}/{total}; best test_acc {best}; ETA {_minutes(left)}"

    def _draw(self) -> None:
        from grid.experiment.live import LiveDisplay

        if self._display is None:
            self._display = LiveDisplay()
        wall = time.time()
        rows = [(n, self.updates[n], eta.seconds_left(self.updates[n], wall)) for n in sorted(self.updates)]
        rows = [r for r in rows if self.state.get(r[0]) == "running"]
        self._display.show(rows, self.status_line(time.monotonic(), wall))


def _minutes(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds / 60:.1f} min"
