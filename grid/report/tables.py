"""The paper's Tables 3-1 to 3-4 and the full grid table, built from the grid's results (one row per cell).

Layout of a paper table: one row per epoch count; for each model of the table four columns: the
published value, ours measured the notebooks' way (`test_acc_as_published`), ours - published, and our
eval-mode accuracy (`test_acc`). With several seeds a cell is mean ± std over the seeds (std with ddof=1).
A cell whose status is not ok shows its status instead of a number. Each table comes as `display`
(strings, for Markdown / HTML) and `data` (the same cells as numbers, for CSV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from grid import atomic
from grid.report import published

REQUIRED = (
    "arch",
    "activation",
    "recipe",
    "seed",
    "epochs",
    "test_acc",
    "test_acc_as_published",
    "status",
    "training_id",
)
OPTIONAL = {"val_acc": math.nan, "train_loss": math.nan, "val_loss": math.nan, "seconds": math.nan, "error": ""}
NUMERIC = ("seed", "epochs", "test_acc", "test_acc_as_published", "val_acc", "train_loss", "val_loss", "seconds")
KEYS = ["arch", "activation", "recipe", "epochs"]

LEGEND = (
    "published: the paper's value. ours: `test_acc_as_published`, measured as the notebooks did "
    "(model left in train mode: dropout on, BatchNorm on each batch's statistics; test batches of 32). "
    "diff: ours - published. eval: `test_acc`, the same model in eval mode. "
    "Several seeds: mean ± std over seeds (ddof=1)."
)


@dataclass(frozen=True)
class TableSpec:
    name: str  # file stem under tables/
    number: str  # the paper's table number
    title: str
    columns: tuple[tuple[str, str], ...]  # (arch, activation) the paper reports
    comparison: tuple[tuple[str, str], ...] = ()  # shown beside them when the grid has them


PAPER_TABLES: tuple[TableSpec, ...] = (
    TableSpec("table_3_1", "3-1", "baseline CNN, ReLU", (("baseline", "relu"),)),
    TableSpec(
        "table_3_2",
        "3-2",
        "baseline CNN, Leaky ReLU and Swish (ReLU beside them for comparison)",
        (("baseline", "leaky_relu"), ("baseline", "swish")),
        (("baseline", "relu"),),
    ),
    TableSpec("table_3_3", "3-3", "improved CNN (3 conv layers, dropout 0.5), ReLU", (("improved", "relu"),)),
    TableSpec("table_3_4", "3-4", "ResNet-18, ReLU", (("resnet18", "relu"),)),
)


@dataclass
class Table:
    name: str
    title: str
    display: pd.DataFrame  # strings, as printed
    data: pd.DataFrame  # numbers, as written to CSV
    notes: list[str] = field(default_factory=list)


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """The results with the optional columns filled in; ValueError naming the missing required ones."""
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"results: missing columns {', '.join(missing)}")
    out = results.copy()
    for col, default in OPTIONAL.items():
        out[col] = out[col] if col in out.columns else default
    wrong = [f"{c} ({out[c].dtype})" for c in NUMERIC if not pd.api.types.is_numeric_dtype(out[c])]
    if wrong:  # e.g. a hand-edited CSV with text in a number column: refused here, not as a traceback later
        raise ValueError(f"columns that must hold numbers do not: {', '.join(wrong)}")
    out["error"] = out["error"].fillna("").astype(str)
    out["status"] = out["status"].fillna("missing").astype(str)
    out["training_id"] = out["training_id"].fillna("").astype(str)
    return out


def _mean_std(values: pd.Series) -> tuple[float, float]:
    v = values.dropna().astype(float)
    if v.empty:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def _aggregate(key: tuple, cells: pd.DataFrame) -> dict:
    arch, activation, recipe, epochs = key
    ok = cells[cells["status"] == "ok"]
    bad = cells[cells["status"] != "ok"].sort_values("seed")
    ours, ours_std = _mean_std(ok["test_acc_as_published"])
    ev, ev_std = _mean_std(ok["test_acc"])
    pub = published.value(arch, activation, epochs)
    if len(bad) == 0:
        status = "ok"
    else:  # no ok seed: the status itself (e.g. "diverged"); some ok: "partial", details in `failures`
        status = "/".join(sorted(set(bad["status"]))) if ok.empty else "partial"
    return {
        "arch": arch,
        "activation": activation,
        "recipe": recipe,
        "epochs": int(epochs),
        "published": pub,
        "ours": ours,
        "ours_std": ours_std,
        "diff": ours - pub,
        "eval": ev,
        "eval_std": ev_std,
        "val_acc": _mean_std(ok["val_acc"])[0],
        "train_loss": _mean_std(ok["train_loss"])[0],
        "val_loss": _mean_std(ok["val_loss"])[0],
        "seconds": _mean_std(ok["seconds"])[0],
        "seeds": len(cells),
        "seeds_ok": len(ok),
        "status": status,
        "failures": "; ".join(
            f"seed {r.seed} {r.status}" + (f": {r.error}" if r.error else "") for r in bad.itertuples()
        ),
        "training": ", ".join(sorted(set(cells["training_id"]) - {""})),
    }


STAT_COLUMNS = [
    "arch",
    "activation",
    "recipe",
    "epochs",
    "published",
    "ours",
    "ours_std",
    "diff",
    "eval",
    "eval_std",
    "val_acc",
    "train_loss",
    "val_loss",
    "seconds",
    "seeds",
    "seeds_ok",
    "status",
    "failures",
    "training",
]


def cell_stats(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (arch, activation, recipe, epochs): the numbers every table is built from."""
    results = check_results(results)
    rows = [_aggregate(key, cells) for key, cells in results.groupby(KEYS, sort=True)]
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


# ---- formatting -------------------------------------------------------------------------------------------


def _num(x: float, fmt: str = ".4f") -> str:
    return "" if x is None or math.isnan(x) else format(x, fmt)


def _acc(row: pd.Series | None, metric: str, annotate: bool = False) -> str:
    """mean ± std of `metric` over the ok seeds; the status when no seed is ok."""
    if row is None:
        return "not run"
    if row["seeds_ok"] == 0:
        return row["status"]
    mean, std = row[metric], row[f"{metric}_std"]
    if math.isnan(mean):
        return "—"
    text = f"{mean:.4f}" + (f" ± {std:.4f}" if not math.isnan(std) else "")
    if annotate and row["status"] == "partial":
        text += f" ({row['seeds_ok']}/{row['seeds']} seeds ok)"  # which and why: in the notes
    return text


def epochs_text(epochs: list[int]) -> str:
    """10, 20, ..., 100 as '10-100 every 10'; anything irregular listed."""
    e = sorted(set(int(x) for x in epochs))
    steps = {b - a for a, b in zip(e, e[1:], strict=False)}
    if len(e) >= 3 and len(steps) == 1:
        step = steps.pop()
        return f"{e[0]}-{e[-1]}" + (f" every {step}" if step != 1 else "")
    return ", ".join(map(str, e))


# ---- the paper's tables -----------------------------------------------------------------------------------


def paper_table(results: pd.DataFrame, spec: TableSpec, stats: pd.DataFrame | None = None) -> Table | None:
    """One of the paper's tables; None when none of its models is in the grid."""
    stats = cell_stats(results) if stats is None else stats
    present = set(zip(stats["arch"], stats["activation"], strict=True))
    if not any(c in present for c in spec.columns):
        return None
    models = [c for c in spec.columns + spec.comparison if c in present]
    recipes = sorted(set(stats["recipe"]))
    archs = {a for a, _ in models}
    cols = [
        (a, act, r)
        for a, act in models
        for r in recipes
        if ((stats["arch"] == a) & (stats["activation"] == act) & (stats["recipe"] == r)).any()
    ]
    epochs = sorted(
        {int(e) for a, act, r in cols for e in stats.loc[(stats["arch"] == a) & (stats["activation"] == act), "epochs"]}
        | {p.epochs for p in published.PUBLISHED if (p.arch, p.activation) in models}
    )

    display = pd.DataFrame({"epochs": [str(e) for e in epochs]})
    data = pd.DataFrame({"epochs": epochs})
    notes = [LEGEND]
    for arch, act, recipe in cols:
        label = (act if len(archs) == 1 else f"{arch} {act}") + (f" [{recipe}]" if len(recipes) > 1 else "")
        key = f"{arch}/{act}" + (f"[{recipe}]" if len(recipes) > 1 else "")
        sel = stats[(stats["arch"] == arch) & (stats["activation"] == act) & (stats["recipe"] == recipe)]
        shown, numbers = _model_columns(sel, arch, act, epochs)
        display = display.assign(**{f"{label}: {k}": v for k, v in shown.items()})
        data = data.assign(**{f"{key}: {k}": v for k, v in numbers.items()})
        notes += _column_notes(label, sel)
    for arch, act in spec.columns:
        if (arch, act) in present:
            notes += [f"{act} (published): {n}" for n in published.notes_for(arch, act)]
        else:
            notes.append(f"{arch} {act}: not in this grid")
    title = f"Table {spec.number}: {spec.title}, test accuracy by training epochs"
    return Table(spec.name, title, display, data, notes)


def _model_columns(sel: pd.DataFrame, arch: str, act: str, epochs: list[int]) -> tuple[dict, dict]:
    """One model's four displayed columns and its numeric columns, one value per epoch count."""
    by_epoch = {int(r["epochs"]): r for _, r in sel.iterrows()}
    rows = [by_epoch.get(e) for e in epochs]  # None: this grid did not run that epoch count
    pubs = [published.value(arch, act, e) for e in epochs]
    ours = [math.nan if r is None else r["ours"] for r in rows]
    diffs = [o - p for o, p in zip(ours, pubs, strict=True)]
    shown = {
        "published": [_num(p, "g") for p in pubs],
        "ours": [_acc(r, "ours", annotate=True) for r in rows],
        "diff": [_num(d, "+.4f") for d in diffs],
        "eval": [_acc(r, "eval") for r in rows],
    }

    def pick(metric: str) -> list:
        return [None if r is None else r[metric] for r in rows]

    numbers = {
        "published": pubs,
        "ours": ours,
        "ours_std": pick("ours_std"),
        "diff": diffs,
        "eval": pick("eval"),
        **{m: pick(m) for m in ("eval_std", "seeds", "seeds_ok", "status", "training")},
    }
    return shown, numbers


def _column_notes(label: str, sel: pd.DataFrame) -> list[str]:
    """Which training each cell was read from, and why cells have no number (one line per reason)."""
    by_training: dict[str, list[int]] = {}
    by_failure: dict[str, list[int]] = {}
    for _, r in sel.iterrows():
        for tid in filter(None, r["training"].split(", ")):
            by_training.setdefault(tid, []).append(int(r["epochs"]))
        if r["failures"]:
            by_failure.setdefault(r["failures"], []).append(int(r["epochs"]))
    if len(by_training) > 1 and all(len(eps) == 1 for eps in by_training.values()):
        notes = [f"{label}: each cell from its own training (ids in the full grid table)"]
    else:
        notes = [
            f"{label}: epochs {epochs_text(eps)} read from training `{tid}`" for tid, eps in sorted(by_training.items())
        ]
    return notes + [f"{label} @ epochs {epochs_text(eps)}: {why}" for why, eps in by_failure.items()]


# ---- the full grid ----------------------------------------------------------------------------------------


def full_grid_table(results: pd.DataFrame, stats: pd.DataFrame | None = None) -> Table:
    """Every arch x activation x recipe x epochs cell of the grid, with the training it was read from."""
    stats = cell_stats(results) if stats is None else stats
    display = pd.DataFrame(
        {
            "arch": stats["arch"],
            "activation": stats["activation"],
            "recipe": stats["recipe"],
            "epochs": stats["epochs"].astype(str),
            "published": [_num(p, "g") for p in stats["published"]],
            "ours": [_acc(r, "ours", annotate=True) for _, r in stats.iterrows()],
            "diff": [_num(d, "+.4f") for d in stats["diff"]],
            "eval": [_acc(r, "eval") for _, r in stats.iterrows()],
            "val_acc": [_num(x) for x in stats["val_acc"]],
            "train_loss": [_num(x) for x in stats["train_loss"]],
            "val_loss": [_num(x) for x in stats["val_loss"]],
            "seconds": [_num(x, ".0f") for x in stats["seconds"]],
            "seeds": [f"{r['seeds_ok']}/{r['seeds']}" for _, r in stats.iterrows()],
            "training": stats["training"],
        }
    )
    notes = [
        LEGEND,
        "seeds: cells ok / cells run. training: the training(s) each cell was read from. "
        "seconds: training time up to that epoch (mean over ok seeds).",
    ]
    failed = stats[stats["failures"] != ""]
    for (arch, act, recipe, why), cells in failed.groupby(["arch", "activation", "recipe", "failures"]):
        notes.append(f"{arch} {act} [{recipe}] @ epochs {epochs_text(list(cells['epochs']))}: {why}")
    return Table("full_grid", "Full grid: every cell", display, stats.copy(), notes)


# ---- output -----------------------------------------------------------------------------------------------


def _md_cell(x: object) -> str:
    return str(x).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    df = table.display
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(_md_cell(c) for c in df.columns) + " |",
        "|"
        + "|".join("---" if c in ("arch", "activation", "recipe", "training") else "---:" for c in df.columns)
        + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    lines += [""] + [f"- {_md_cell(n)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def build_tables(results: pd.DataFrame) -> dict[str, Table | None]:
    """name -> table for the paper's four tables (None: not in this grid), then "full_grid"."""
    stats = cell_stats(results)
    tables: dict[str, Table | None] = {spec.name: paper_table(results, spec, stats) for spec in PAPER_TABLES}
    tables["full_grid"] = full_grid_table(results, stats)
    return tables


def write_tables(results: pd.DataFrame, run_dir: str | Path) -> list[Path]:
    """Writes RUN_DIR/tables/<name>.md and .csv for every table; removes those of tables not in this grid."""
    out = Path(run_dir) / "tables"
    paths = []
    for name, t in build_tables(results).items():
        if t is None:  # a stale file from an earlier build must not pass for this grid's table
            for ext in (".md", ".csv"):
                (out / f"{name}{ext}").unlink(missing_ok=True)
            continue
        paths.append(atomic.write_text(out / f"{name}.md", to_markdown(t)))
        paths.append(atomic.write_csv(out / f"{name}.csv", t.data))
    return paths


def omitted_text(spec: TableSpec) -> str:
    models = ", ".join(f"{a} {b}" for a, b in spec.columns)
    return f"Table {spec.number} ({spec.title}): not in this grid (needs {models})"


def tables_markdown(results: pd.DataFrame) -> str:
    """The paper's four tables as Markdown, for printing at the end of a run."""
    tables = build_tables(results)
    return "\n".join(to_markdown(t) if (t := tables[s.name]) else f"### {omitted_text(s)}\n" for s in PAPER_TABLES)
