"""The grid's own W&B run: its results as one Artifact beside the trainings' runs, the verdict in its summary.

One run per grid (id from the grid's name, job_type "results", in the grid's group), resumed by a later
`--resume`, which logs a new version of the artifact. Online failure falls back to offline exactly as a
training's run does (grid.experiment.wandb_run), and never raises.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from grid.experiment.wandb_run import init_or_offline, run_id
from grid.report import verdict as verdicts
from grid.wandb_settings import WandbSettings, redact, resolved_mode, sync_command, wandb_dir

log = logging.getLogger(__name__)

RESULTS_ID = "grid-results"  # run_id(grid, RESULTS_ID): not a training id (those are arch-activation-...)
FILES = ("results.parquet", "results.csv", "history.parquet", "report.html", "grid.json")
FOLDERS = ("tables", "plots")
IMAGES = {"verdict_plot": "plots/verdict.png", "accuracy_plot": "plots/accuracy.png"}  # the report shows them


def results_run_name(group: str) -> str:
    return f"{group}-results"


def log_grid_results(settings: WandbSettings, group: str, out: Path, verdict: verdicts.Verdict) -> dict[str, str]:
    """Logs OUT's results as the artifact `<group>-results` and the verdict in the run's summary; returns
    {"mode": online | offline | "" (nothing logged), "fallback": why offline though online was asked}."""
    mode = resolved_mode(settings)
    if mode == "disabled":
        return {"mode": "", "fallback": ""}
    name = results_run_name(group)
    try:
        import wandb

        config = {"grid": group, "verdict_rule": verdicts.RULE}
        run_args = dict(name=name, group=group, tags=["results"], config=config, job_type="results")
        run, fallback = init_or_offline(
            settings, mode, run_id(group, RESULTS_ID), wandb_dir(settings), "", name, warn=False, **run_args
        )  # not warned: end_of_grid says how it was logged
        run.log_artifact(_artifact(wandb, name, out))
        images = {k: wandb.Image(str(out / v)) for k, v in IMAGES.items() if (out / v).is_file()}
        run.log({**images, "verdict": _verdict_table(wandb, verdict)})
        run.summary.update(_summary(verdict))
        offline = run.settings.mode == "offline"
        run.finish()
        if offline:
            wandb.teardown()  # every record on disk before the process moves on
        return {"mode": "offline" if offline else "online", "fallback": fallback}
    except Exception as e:  # noqa: BLE001 - the grid's outputs are on disk already; W&B is a side channel
        log.warning("W&B results run failed, results stay in %s: %s", out, redact(f"{type(e).__name__}: {e}")[:200])
        return {"mode": "", "fallback": ""}


def _artifact(wandb: Any, name: str, out: Path) -> Any:
    artifact = wandb.Artifact(name, type="grid-results", description="results, tables, plots and report.html")
    for f in FILES:
        if (out / f).is_file():
            artifact.add_file(str(out / f), name=f)
    for d in FOLDERS:
        if (out / d).is_dir():
            artifact.add_dir(str(out / d), name=d)
    return artifact


def _verdict_table(wandb: Any, verdict: verdicts.Verdict) -> Any:
    rows = verdicts.comparison_rows(verdict)
    columns = list(rows[0]) if rows else []
    return wandb.Table(columns=columns, data=[list(r.values()) for r in rows])


def _summary(verdict: verdicts.Verdict) -> dict[str, Any]:
    """The headline, and per published cell: published, ours, std, n, consistent."""
    summary: dict[str, Any] = {"verdict": verdict.headline}
    for c in verdict.comparisons:
        key = f"{c.arch}/{c.activation}@{c.epochs}"
        summary[f"published/{key}"] = c.published
        summary[f"status/{key}"] = c.status
        if c.n:
            summary[f"ours/{key}"], summary[f"n/{key}"] = c.ours, c.n
    summary.update({f"finding/{i}": f"{f.status}: {f.claim}" for i, f in enumerate(verdict.findings, 1)})
    return summary


def end_of_grid(
    settings: WandbSettings, group: str, out: Path, verdict: verdicts.Verdict, offline_runs: bool
) -> list[str]:
    """The grid's W&B epilogue: its results run, its report (saved online, else its spec written for
    `push`), and the `wandb sync` command when runs wait offline; returns the lines to print."""
    from grid.report import wandb_report

    logged = log_grid_results(settings, group, out, verdict)
    lines = []
    if logged["mode"]:
        lines.append(f"W&B: the grid's results (artifact {results_run_name(group)}) logged {logged['mode']}")
    offline_runs = offline_runs or logged["mode"] == "offline"
    where = wandb_report.publish(out, settings.project, settings.entity, online=not offline_runs)
    if where.startswith(("http://", "https://")):
        lines.append(f"W&B report: {where}")
    else:
        lines.append(
            f"W&B report written to {where}; save it after syncing: python -m grid.report.wandb_report push {where}"
        )
    command = sync_command(settings, offline_runs=offline_runs)
    if command:
        lines.append(f"W&B ran offline; to upload the runs: {command}")
    return lines
