"""Ray wiring: start Ray, size the grid's concurrency, and run a Ray Tune grid over trainings, each Tune trial
driving one Ray Train `TorchTrainer`. The Ray 2.60 facts it is built around are in docs/design.md ("Ray facts")."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from grid.experiment.spec import GridError, GridSpec

DRIVER_RESOURCE = "TRAIN_DRIVER"
# Ray-side settings the project needs wherever it runs (passed to every Ray process via runtime_env).
RAY_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",  # a log-only actor per training (docs/design.md, "Ray facts")
}
# A GPU share per training when --gpus-per-trial is not given: the measured point (README, "How long it takes").
DEFAULT_GPU_FRACTION = {"baseline": 0.25, "improved": 0.25, "resnet18": 0.25}
CONTROLLER_FAILURE_LIMIT = 3


@dataclass(frozen=True)
class Resources:
    cpus_per_worker: int
    gpu_per_training: float  # 0 on a CPU-only cluster
    workers: int
    max_concurrent: int


def start_ray(address: str | None, verbose: bool, extra_env: dict[str, str] | None = None) -> None:
    """`extra_env` (MPS's pipe folder): given to every Ray process, over what the shell has."""
    import ray

    env = dict(RAY_ENV)
    if address:
        # On a cluster a training may wait minutes for the autoscaler to boot a GPU node, longer than Ray's
        # worker-group start timeout; the controller failure limit still bounds a real misconfiguration.
        env["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = "900"
    os.environ.update({k: os.environ.get(k, v) for k, v in env.items()})
    runtime_env = {"env_vars": {**{k: os.environ[k] for k in env}, **(extra_env or {})}}
    level = logging.INFO if verbose else logging.WARNING
    if not verbose:
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # A notice that Ray's default token authentication is on: nothing for the user to do, so --verbose only.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if not verbose:
        _drop_worker_start_warnings()
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=verbose, logging_level=level)
    else:
        # address="local": always a new Ray of our own, never a `ray start` cluster left on this machine.
        # Its head node is this machine and hosts the trial drivers.
        ray.init(
            address="local",
            resources={DRIVER_RESOURCE: 1024},
            # The dashboard's module processes come from a multiprocessing forkserver that Ray kills at
            # shutdown before it can remove its /tmp/pymp-* folder; a local grid never uses the dashboard.
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=verbose,
            logging_level=level,
        )


WORKER_START_WARNING = "worker processes have been started on node"


def _drop_worker_start_warnings() -> None:
    """Ray Train starts about eight processes per training, so on a small machine the raylet warns the driver
    that more workers started than its CPU count expects ("(raylet) WARNING: 8 PYTHON worker processes ..."): an
    expected state with nothing for the user to do. The driver prints the raylet's messages through
    `print_to_stdstream`; this drops that one warning and passes every other message on (--verbose keeps all)."""
    from ray._private import worker

    show = worker.print_to_stdstream
    if getattr(show, "drops_worker_start_warnings", False):
        return

    def print_to_stdstream(data, ignore_prefix: bool) -> None:
        lines = [line for line in data.get("lines", []) if WORKER_START_WARNING not in line]
        if lines:
            show({**data, "lines": lines}, ignore_prefix)

    print_to_stdstream.drops_worker_start_warnings = True
    worker.print_to_stdstream = print_to_stdstream


def plan_resources(spec: GridSpec, trainings: int, *, autoscaling: bool = False) -> Resources:
    """Check the grid against the cluster (before any trial starts) and size its concurrency.

    `autoscaling` (a cluster reached by --address, with --device cuda): GPU nodes may not exist yet, so the
    trial drivers bound concurrency and pending trainings make the autoscaler start GPU nodes."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus, drivers = int(total.get("CPU", 0)), total.get("GPU", 0.0), int(total.get(DRIVER_RESOURCE, 0))
    if not drivers:
        raise GridError(
            f"the cluster has no {DRIVER_RESOURCE!r} resource for the trial drivers; give its head "
            f"node some, e.g. --resources='{{\"{DRIVER_RESOURCE}\": 24}}' (cluster.yaml does)"
        )
    need_cpus = spec.workers * spec.cpus_per_worker
    waits_for_gpus = autoscaling and spec.device == "cuda"
    if need_cpus > cpus and not waits_for_gpus:
        raise GridError(
            f"{spec.workers} workers x {spec.cpus_per_worker} CPUs per training need {need_cpus} "
            f"CPUs but the cluster has {cpus}"
        )
    if spec.device == "cuda" and gpus == 0 and not waits_for_gpus:
        raise GridError("--device cuda but the cluster has no GPU")
    fraction = 0.0
    if (gpus > 0 or waits_for_gpus) and spec.device != "cpu" and spec.gpus_per_trial != 0:
        fraction = spec.gpus_per_trial or max(DEFAULT_GPU_FRACTION.get(a, 0.25) for a in spec.archs)
        if spec.gpus_per_trial is None and spec.pack > 1:
            fraction = 1.0  # a pack fills its GPU itself
        if spec.workers > 1:
            fraction = max(fraction, 0.5)  # Ray issue 48012
    if waits_for_gpus:
        return Resources(spec.cpus_per_worker, fraction, spec.workers, max(1, min(drivers, trainings)))
    by_cpu = cpus // need_cpus
    by_gpu = math.floor(gpus / fraction + 1e-9) if fraction else by_cpu
    return Resources(spec.cpus_per_worker, fraction, spec.workers, max(1, min(by_cpu, by_gpu, drivers, trainings)))


def run_trial(config: dict[str, Any]) -> None:
    """A Tune trial: drive one TorchTrainer, whose metrics reach Tune through TuneReportCallback."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from grid.experiment.worker import train_loop

    job = {**config["job"], "fit_started": time.time()}  # the worker records it with its start-up's parts
    res: Resources = config["resources"]
    per_worker = {"CPU": res.cpus_per_worker}
    if res.gpu_per_training:
        per_worker["GPU"] = res.gpu_per_training / res.workers
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=job,
        scaling_config=ScalingConfig(
            num_workers=res.workers, use_gpu=bool(res.gpu_per_training), resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=config["train_run_name"],
            storage_path=config["storage_path"],
            storage_filesystem=config["storage_filesystem"],
            failure_config=FailureConfig(
                max_failures=config["max_failures"], controller_failure_limit=CONTROLLER_FAILURE_LIMIT
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(res.cpus_per_worker)}},
        ),
    )
    trainer.fit()


def run_tune(
    trials: list[dict[str, Any]],
    *,
    experiment: str,
    storage_path: str,
    storage_filesystem,
    max_concurrent: int,
    callbacks: list,
    verbose: bool,
    stop=None,
):
    """Run the pending trials (a pack of trainings each) as one Tune grid; returns Tune's ResultGrid. `stop`: a
    Tune Stopper."""
    from ray import tune

    by_name = {t["trial"]: t for t in trials}
    # Trial configs carry a whole job each: Tune searches over names, the jobs travel in the object store.
    trainable = tune.with_parameters(_trial_by_name, trials=by_name)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {DRIVER_RESOURCE: 1}),
        param_space={"training": tune.grid_search(list(by_name))},  # Tune starts trials in this order
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent,
            trial_name_creator=lambda t: t.config["training"],
            trial_dirname_creator=lambda t: t.config["training"],
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            callbacks=callbacks,
            stop=stop,
            verbose=2 if verbose else 0,
        ),
    )
    # Tune's newer console output prints its own banner and paths even at verbose=0; the legacy reporter is
    # silent there, which leaves the grid's own progress lines alone on the console.
    quiet = {} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"}
    # The grid handles SIGINT itself (grid.experiment.interrupt): Tune's handler would advise Tuner.restore.
    with set_temporarily({**quiet, "TUNE_DISABLE_SIGINT_HANDLER": "1"}):
        return tuner.fit()


def _trial_by_name(config: dict[str, Any], trials: dict[str, dict[str, Any]]) -> None:
    run_trial(trials[config["training"]])


@contextlib.contextmanager
def set_temporarily(values: Mapping[str, str]) -> Iterator[None]:
    """Sets `values` in os.environ (so that child processes inherit them); on exit restores those keys alone,
    leaving whatever else changed meanwhile."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
