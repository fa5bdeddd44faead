"""The run's report: tables, plots and a self-contained report.html (images inlined, no external assets).

`build(RUN_DIR)` rebuilds RUN_DIR/tables/, RUN_DIR/plots/ and RUN_DIR/report.html from RUN_DIR's files. Every
string that comes from the run (grid name, training ids, error messages, grid.json values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import pandas as pd

from grid import atomic
from grid.files import PREDICTIONS_FILE, SUBMISSION_FILE
from grid.report import plots, tables, verdict

PAPER_PROTOCOL = (
    "Paper recipe: SGD, lr 0.001 (constant, no schedule), momentum 0.9, no weight decay; batch size 32, "
    "shuffled each epoch; cross-entropy loss; no augmentation. Inputs scaled to [0, 1] and normalized per "
    "channel with mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010).",
    "Split: the 50,000 training images split at random with seed 0 into 40,000 train / 10,000 validation "
    "(torch random_split); the test set is the official 10,000 images.",
    "test_acc: the model's true accuracy on the 10,000 test images, in eval mode (dropout off, BatchNorm on "
    "its running statistics).",
    "test_acc_as_published: the accuracy measured the way the paper's notebooks did, which never call "
    "net.eval(): model in train mode (dropout active, BatchNorm on each batch's statistics), test batches of "
    "32 in the fixed, class-mixed file order, without changing the model's state. The paper's numbers are "
    "compared with this one; test_acc is shown beside it.",
)


class ReportError(Exception):
    """A run folder that cannot be reported; the message is one line, '<path>: <problem>'."""


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pyarrow/pandas raise many types for a bad file; all mean "unreadable"
        raise ReportError(f"{path}: cannot read: {_one_line(e)}") from e


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """RUN_DIR/results.parquet (or results.csv), checked; ReportError when absent or unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / "results.parquet"
    if not path.is_file() and (run_dir / "results.csv").is_file():
        path = run_dir / "results.csv"  # the design allows either
    if not path.is_file():
        raise ReportError(f"{run_dir / 'results.parquet'}: not found (is {run_dir} a run folder?)")
    try:
        return tables.check_results(_read_table(path))
    except ValueError as e:
        raise ReportError(f"{path}: {e}") from e


def load_extras(run_dir: str | Path) -> tuple[pd.DataFrame | None, dict]:
    """(history or None, grid spec or {}): both optional, but a present file must be readable."""
    run_dir = Path(run_dir)
    history = _read_table(run_dir / "history.parquet") if (run_dir / "history.parquet").is_file() else None
    path = run_dir / "grid.json"
    if not path.is_file():
        return history, {}
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: {_one_line(e)}") from e
    if not isinstance(spec, dict):
        raise ReportError(f"{path}: not a JSON object")
    return history, spec


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(results, history or None, grid spec or {}) from a run folder."""
    return (load_results(run_dir), *load_extras(run_dir))


# ---- HTML pieces ------------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}td.bad{color:#b00;font-weight:600}
ul.notes{font-size:12px;color:#444}img{max-width:100%}code{font-size:12px}.wide{overflow-x:auto}
p.headline{font-size:18px;font-weight:600}td.good{color:#070;font-weight:600}.row{display:flex;flex-wrap:wrap;gap:1em}
.row img{height:420px;width:auto;max-width:100%}table.config td{font-size:12px}"""

FIRST_PLOTS = ("verdict.png", "accuracy.png")  # published vs ours, beside the accuracy-by-epochs curves
BAD_STATUSES = {"diverged", "failed", "missing", "partial"}


def _html_table(df: pd.DataFrame, numeric: set[str] | None = None) -> str:
    numeric = numeric if numeric is not None else set()
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, row, strict=True):
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            bad = text.split("/")[0] in BAD_STATUSES or text.endswith("seeds ok)")
            cls = "bad" if bad else "num" if col in numeric else ""
            cells.append(f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="wide"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _table_section(t: tables.Table) -> str:
    numeric = {c for c in t.display.columns if c not in ("arch", "activation", "recipe", "training")}
    notes = "".join(f"<li>{escape(n)}</li>" for n in t.notes)
    return f'<h3>{escape(t.title)}</h3>{_html_table(t.display, numeric)}<ul class="notes">{notes}</ul>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _kv(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _text(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def _duration(seconds: float) -> str:
    if pd.isna(seconds):
        return "unknown"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h {rem // 60:02d}m {rem % 60:02d}s"


def _config(run_dir: Path, results: pd.DataFrame, spec: dict) -> str:
    """The run's configuration, last and compact: what was recorded, without empty values."""
    counts = results["status"].value_counts()
    per_training = results[results["training_id"] != ""].groupby("training_id")["seconds"].max()
    rows: list[tuple[str, object]] = [
        ("run folder", run_dir.name),
        ("cells", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"),
        ("trainings", len(per_training)),
        ("training time (sum over trainings)", _duration(per_training.sum(min_count=1))),
        ("data manifest sha256", _recorded(spec, "data_manifest_sha256", "not recorded")),
        ("code version", _recorded(spec, "code_version", "not recorded")),
    ]
    shown = {"data_manifest_sha256", "code_version", "recipe_settings", "extras"}  # recipe: in the protocol
    extras = spec.get("extras") if isinstance(spec.get("extras"), dict) else {}
    recorded = {
        **{k: v for k, v in spec.items() if k not in shown},
        **{k: v for k, v in extras.items() if k not in shown},
    }
    rows += [(k, v) for k, v in recorded.items() if v not in (None, "", [], {})]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_compact(v))}</td></tr>" for k, v in rows)
    return f'<h2>Configuration</h2><table class="config">{body}</table>'


def _compact(v: object) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    return _text(v)


def _recipe_details(name: str, spec: dict) -> str:
    if name == "paper":
        return ""
    fields = _recorded(spec, "recipe_settings")  # grid.json holds the recipe's fields: no torch needed here
    if not isinstance(fields, dict) or fields.get("name") != name:
        return f"<p>Recipe <code>{escape(name)}</code>: details not recorded in grid.json.</p>"
    return f"<p>Recipe <code>{escape(name)}</code> (not the paper's):</p>" + _kv(list(fields.items()))


def _recorded(spec: dict, key: str, default: object = None) -> object:
    """A value `run_grid.py` recorded in grid.json: under `extras`, or at the top (older run folders)."""
    extras = spec.get("extras")
    if isinstance(extras, dict) and key in extras:
        return extras[key]
    return spec.get(key, default)


def _protocol(results: pd.DataFrame, spec: dict) -> str:
    parts = ["<h2>Protocol</h2>"] + [f"<p>{escape(p)}</p>" for p in PAPER_PROTOCOL]
    recipes = set(results["recipe"].astype(str)) | ({str(spec["recipe"])} if "recipe" in spec else set())
    parts += [_recipe_details(name, spec) for name in sorted(recipes)]
    fills = results[results["training_id"] != ""].groupby("training_id")["epochs"].nunique()
    shared = bool(_recorded(spec, "prefix_sharing", (fills > 1).any()))
    if shared:
        parts.append(
            "<p>With a constant learning rate a k-epoch run is exactly the first k epochs of a "
            "longer run with the same seed, so one training fills every epoch cell of its arch/"
            "activation/seed; the Trainings section says which cells each training filled.</p>"
        )
    else:
        parts.append(
            "<p>Every cell was read from its own training (no prefix sharing in this grid: with a "
            "learning-rate schedule a shorter run is not the prefix of a longer one).</p>"
        )
    return "".join(parts)


def _trainings(run_dir: Path, results: pd.DataFrame) -> str:
    rows = []
    for tid, cells in results[results["training_id"] != ""].groupby("training_id", sort=True):
        r = cells.iloc[0]
        bad = cells[cells["status"] != "ok"]
        not_ok = f"{tables.epochs_text(list(bad['epochs']))}: {'/'.join(sorted(set(bad['status'])))}"
        rows.append(
            {
                "training": tid,
                "arch": r["arch"],
                "activation": r["activation"],
                "recipe": r["recipe"],
                "seed": r["seed"],
                "cells (epochs)": tables.epochs_text(list(cells["epochs"])),
                "cells not ok": not_ok if len(bad) else "",
            }
        )
    parts = ["<h2>Trainings</h2>", _html_table(pd.DataFrame(rows)) if rows else "<p>none recorded</p>"]
    folder = run_dir / "trainings"
    # Listing the folder (rather than joining training ids to it) keeps an odd id from reading elsewhere.
    figures = sorted(p for p in folder.glob(f"*/{PREDICTIONS_FILE}") if p.is_file()) if folder.is_dir() else []
    for png in figures:
        tid = png.parent.name
        sub = png.parent / SUBMISSION_FILE
        extra = f" (predictions of all test images: trainings/{tid}/{SUBMISSION_FILE})" if sub.is_file() else ""
        caption = f"12 test images with predicted and true labels{extra}"
        parts.append(f"<h3>{escape(tid)}</h3><p>{escape(caption)}</p>" + _img(png, f"predictions of {tid}"))
    return "".join(parts)


def _failures(results: pd.DataFrame) -> str:
    bad = results[results["status"] != "ok"]
    if bad.empty:
        return "<h2>Failed cells</h2><p>none: every cell is ok.</p>"
    cols = ["arch", "activation", "recipe", "seed", "epochs", "status", "training_id", "error"]
    return "<h2>Failed cells</h2>" + _html_table(bad.sort_values(cols[:5])[cols])


def _verdict(v: verdict.Verdict, figures: list[str]) -> str:
    """Did it reproduce the paper: the headline, every published value against ours, the findings."""
    rows = verdict.comparison_rows(v)
    head = "".join(f"<th>{escape(k)}</th>" for k in rows[0]) if rows else ""
    cls = {"consistent": "good", "not consistent": "bad"}
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{cls.get(val, "") if k == "verdict" else "num" if k in ("ours", "diff", "n") else ""}">'
            f"{escape(val)}</td>"
            for k, val in r.items()
        )
        + "</tr>"
        for r in rows
    )
    findings = "".join(
        f"<li><strong>{escape(f.status)}</strong>: {escape(f.claim)}. {escape(f.evidence)}. "
        + f"<i>Rule: {escape(f.rule)}.</i></li>"
        for f in v.findings
    )
    caveats = "".join(f"<li>caveat: {escape(c)}</li>" for c in v.caveats)
    return (
        f"<h2>Verdict ({escape(v.recipe)} recipe)</h2>"
        f'<p class="headline">{escape(v.headline)}.</p>'
        f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'
        f'<ul class="notes"><li>ours: test_acc_as_published, mean ± std over seeds; n: ok seeds. '
        f"{escape(verdict.RULE)}.</li>{caveats}</ul>"
        f"<h3>The paper's findings</h3><ul>{findings}</ul>"
        f'<div class="row">{"".join(figures)}</div>'
    )


def render_html(run_dir: str | Path, results: pd.DataFrame, spec: dict, plot_paths: list[Path]) -> str:
    """The whole report as one HTML string; every run-provided string escaped, every image inlined."""
    run_dir = Path(run_dir)
    results = tables.check_results(results)
    name = str(spec.get("name", run_dir.name))
    built = tables.build_tables(results)
    paper = [
        _table_section(t) if (t := built[s.name]) else f"<h3>{escape(tables.omitted_text(s))}</h3>"
        for s in tables.PAPER_TABLES
    ]
    present = [p for p in plot_paths if p.is_file()]
    first = [_img(p, p.stem) for p in present if p.name in FIRST_PLOTS]  # beside the verdict
    figures = [_img(p, p.stem) for p in present if p.name not in FIRST_PLOTS]
    body = [
        f"<h1>cifar-grid: {escape(name)}</h1>",
        "<p>The paper's Tables 3-1 to 3-4 reproduced on CIFAR-10, measured beside the published numbers.</p>",
        _verdict(verdict.verdict(results, spec), first),
        "<h2>The paper's tables</h2>",
        *paper,
        "<h2>Full grid</h2>",
        _table_section(built["full_grid"]),
        "<h2>Plots</h2>",
        *figures,
        _failures(results),
        _trainings(run_dir, results),
        _protocol(results, spec),
        _config(run_dir, results, spec),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cifar-grid: {escape(name)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def build(
    run_dir: str | Path,
    results: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    spec: dict | None = None,
) -> Path:
    """Writes RUN_DIR/tables/, RUN_DIR/plots/ and RUN_DIR/report.html; returns the report's path.
    Whatever is not passed in is read from RUN_DIR (results.parquet, history.parquet, grid.json)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir) if results is None else tables.check_results(results)
    if history is None or spec is None:
        found_history, found_spec = load_extras(run_dir)
        history = found_history if history is None else history
        spec = found_spec if spec is None else spec
    tables.write_tables(results, run_dir)
    plot_paths = plots.write_plots(results, history, run_dir)
    return atomic.write_text(run_dir / "report.html", render_html(run_dir, results, spec, plot_paths))
