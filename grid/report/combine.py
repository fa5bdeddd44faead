"""Several run folders as one: seeds trained in separate runs (other machines, other days) combined into one set
of results, tables and one verdict, only where they measured the same thing.

Runs combine when their grid.json records the same protocol (every setting that changes a number: recipe and
its fields, lr, batch size, split, subsets) and the same data (the shards' manifest sha256), and no cell (arch,
activation, recipe, seed, epochs) is in two of them. Where they may differ: the axes, and how they ran
(device, resources, packs, checkpoints, code version, which the combined grid.json lists per run).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from grid import atomic
from grid.files import GRID_FILE
from grid.report.html import ReportError, load_run

CELL = ["arch", "activation", "recipe", "seed", "epochs"]
AXES = ("archs", "activations", "epochs", "seeds")
# grid.json fields that say how a grid ran, not what it measured; every other field is protocol.
HOW_IT_RAN = {"name", "select", "workers", "cpus_per_worker", "gpus_per_trial", "max_failures", "pack", "device"}
HOW_IT_RAN |= {"checkpoint_every", "extras", *AXES}
RECORDED = ("data_manifest_sha256", "recipe_settings")  # what the run found that must agree too
COMBINED_FROM = "combined_from"  # the combined grid.json's record of its runs


def _protocol(spec: dict) -> dict:
    extras = spec.get("extras", {})
    return {**{k: v for k, v in spec.items() if k not in HOW_IT_RAN}, **{k: extras.get(k) for k in RECORDED}}


def _check_same_protocol(runs: list[Path], specs: list[dict]) -> None:
    first = _protocol(specs[0])
    for run, spec in zip(runs[1:], specs[1:], strict=True):
        theirs = _protocol(spec)
        differ = sorted(k for k in first.keys() | theirs.keys() if first.get(k) != theirs.get(k))
        if differ:
            key = differ[0]
            what = "data" if key == "data_manifest_sha256" else "protocol"
            raise ReportError(
                f"{run / GRID_FILE}: another {what} than {runs[0] / GRID_FILE} "
                f"({key}: {_short(theirs.get(key))} against {_short(first.get(key))}); runs combine only when they "
                "measured the same thing"
            )


def _short(value: object) -> str:
    text = str(value)
    return text[:16] if len(text) == 64 else text  # a sha256: its first 16 hex digits are enough to tell


def _check_no_cell_twice(runs: list[Path], results: list[pd.DataFrame]) -> None:
    seen: dict[tuple, Path] = {}
    for run, frame in zip(runs, results, strict=True):
        for cell in frame[CELL].itertuples(index=False, name=None):
            if cell in seen:
                arch, activation, recipe, seed, epochs = cell
                raise ReportError(
                    f"{run}: the cell {arch} {activation} {recipe} seed {seed} @ {epochs} is also in {seen[cell]}; "
                    "combine runs of different seeds or cells"
                )
        seen.update(dict.fromkeys(frame[CELL].itertuples(index=False, name=None), run))


def _combined_spec(runs: list[Path], specs: list[dict]) -> dict:
    """The first run's grid.json with the axes of all of them, and what each run was under extras."""
    spec = dict(specs[0])
    for axis in AXES:
        spec[axis] = sorted({v for s in specs for v in s.get(axis, [])})
    spec["name"] = "+".join(s.get("name", r.name) for r, s in zip(runs, specs, strict=True))
    ran = [
        {"run": str(r), **{k: s.get(k) for k in ("name", "seeds", "device")}, **_code(s)}
        for r, s in zip(runs, specs, strict=True)
    ]
    spec["extras"] = {**specs[0].get("extras", {}), COMBINED_FROM: ran}
    spec["extras"].pop("code_version", None)  # per run, under combined_from
    return spec


def _code(spec: dict) -> dict:
    return {"code_version": spec.get("extras", {}).get("code_version", "unknown")}


def _check_out(out: Path, runs: list[Path]) -> None:
    """OUT is new, empty, or an earlier combination (rebuilt); never a run folder or a user's other files."""
    if any(out.resolve() == r.resolve() for r in runs):
        raise ReportError(f"{out}: is one of the runs; --out needs a folder of its own")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        _, _, spec = load_run(out)
    except ReportError:
        spec = {}
    if COMBINED_FROM not in spec.get("extras", {}):
        raise ReportError(f"{out}: not empty and not a combined report; choose another --out")


def combine(runs: list[Path], out: Path) -> tuple[pd.DataFrame, dict, Path]:
    """Writes OUT's results, history, grid.json, tables, plots, trainings/ and report.html from `runs`; returns
    (the combined results, their grid.json, the report's path). ReportError (one line) when they cannot combine."""
    from grid.report.html import build

    _check_out(out, runs)
    loaded = [load_run(r) for r in runs]
    results, histories, specs = zip(*loaded, strict=True)
    missing = [r / GRID_FILE for r, s in zip(runs, specs, strict=True) if not s]
    if missing:
        raise ReportError(f"{missing[0]}: not found; a run combines only with what it was trained under")
    _check_same_protocol(runs, list(specs))
    _check_no_cell_twice(runs, list(results))
    combined = pd.concat(results, ignore_index=True).sort_values(CELL, ignore_index=True)
    present = [h for h in histories if h is not None]
    history = pd.concat(present, ignore_index=True) if present else None
    spec = _combined_spec(runs, list(specs))
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_parquet(out / "results.parquet", combined)
    atomic.write_csv(out / "results.csv", combined)
    if history is not None:
        atomic.write_parquet(out / "history.parquet", history)
    atomic.write_json(out / GRID_FILE, spec)
    for run in runs:  # each training's submission and figure, which the report shows
        if (run / "trainings").is_dir():
            shutil.copytree(run / "trainings", out / "trainings", dirs_exist_ok=True)
    return combined, spec, build(out, combined, history, spec)
