"""Did the grid reproduce the paper? Every published value against ours, and the paper's findings checked.

A published value is *consistent* with ours when it lies within ours ± the tolerance: 0.03 with one seed;
with several seeds max(2 std, 0.03) around our mean (std over seeds, ddof=1). Ours is
`test_acc_as_published`, measured the way the paper's notebooks measured. Each finding of the paper is
checked with the rule written beside it (FINDING_RULES) and is `holds`, `does not hold` or `not in this grid`
(the grid lacks the models or epoch counts the rule needs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from grid.report import published
from grid.report.tables import cell_stats

TOLERANCE = 0.03  # accuracy points the paper's two-to-four-digit values are allowed to differ by
SIGMAS = 2.0  # with several seeds: the band is mean ± max(SIGMAS std, TOLERANCE)
FALL = 0.01  # "then falls": the longest run at least this far below the peak
RISE_SLACK = 0.005  # "keeps rising": the 100-epoch value within this of the best
RULE = (
    f"consistent: the published value lies within ours ± {TOLERANCE:g} (one seed), or within "
    f"mean ± max({SIGMAS:g} std, {TOLERANCE:g}) over several seeds (std with ddof=1)"
)

HOLDS, FAILS, ABSENT = "holds", "does not hold", "not in this grid"


@dataclass(frozen=True)
class Comparison:
    """One published value against ours."""

    table: str
    arch: str
    activation: str
    epochs: int
    published: float
    ours: float  # mean over the ok seeds; NaN when the grid has no result for the cell
    std: float  # NaN with fewer than two seeds
    n: int  # ok seeds
    status: str  # consistent | not consistent | not in this grid | no result

    @property
    def diff(self) -> float:
        return self.ours - self.published

    @property
    def tolerance(self) -> float:
        return max(SIGMAS * self.std, TOLERANCE) if self.n > 1 and not math.isnan(self.std) else TOLERANCE

    @property
    def cell(self) -> str:
        return f"Table {self.table}: {self.arch} {self.activation} @ {self.epochs} epochs"


@dataclass(frozen=True)
class Finding:
    claim: str
    rule: str
    status: str  # holds | does not hold | not in this grid
    evidence: str


@dataclass(frozen=True)
class Verdict:
    recipe: str
    comparisons: tuple[Comparison, ...]
    findings: tuple[Finding, ...]
    caveats: tuple[str, ...]

    @property
    def headline(self) -> str:
        compared = [c for c in self.comparisons if c.status in ("consistent", "not consistent")]
        ok = sum(c.status == "consistent" for c in compared)
        held = [f for f in self.findings if f.status != ABSENT]
        values = (
            f"{ok} of {len(compared)} published values in this grid consistent with ours"
            if compared
            else "no published value of the paper has a result in this grid"
        )
        found = sum(f.status == HOLDS for f in held)
        return f"{values}; {found} of {len(held)} checkable findings hold ({len(self.findings)} in the paper)"


# ---- the published values --------------------------------------------------------------------------------


def _compare(p: published.Published, stats: pd.DataFrame) -> Comparison:
    row = stats[(stats["arch"] == p.arch) & (stats["activation"] == p.activation) & (stats["epochs"] == p.epochs)]
    if row.empty:
        return Comparison(p.table, p.arch, p.activation, p.epochs, p.accuracy, math.nan, math.nan, 0, ABSENT)
    r = row.iloc[0]
    c = Comparison(
        p.table,
        p.arch,
        p.activation,
        p.epochs,
        p.accuracy,
        float(r["ours"]),
        float(r["ours_std"]),
        int(r["seeds_ok"]),
        "",
    )
    if c.n == 0 or math.isnan(c.ours):
        return _with(c, "no result")
    return _with(c, "consistent" if abs(c.diff) <= c.tolerance else "not consistent")


def _with(c: Comparison, status: str) -> Comparison:
    return Comparison(**{**c.__dict__, "status": status})


# ---- the paper's findings --------------------------------------------------------------------------------


def _curve(stats: pd.DataFrame, arch: str, activation: str) -> pd.Series:
    """ours by epoch count (ok cells only) of one model."""
    sel = stats[(stats["arch"] == arch) & (stats["activation"] == activation) & stats["ours"].notna()]
    return sel.set_index("epochs")["ours"].sort_index()


def _peaks_early(stats: pd.DataFrame) -> tuple[str, str]:
    curves = {
        a: _curve(stats, "baseline", a) for a in sorted(set(stats.loc[stats["arch"] == "baseline", "activation"]))
    }
    curves = {a: c for a, c in curves.items() if c.index.isin([20, 30]).any() and c.index.max() >= 50}
    if not curves:
        return ABSENT, "needs baseline cells at 20 or 30 epochs and at 50 or more"
    parts, ok = [], True
    for act, c in curves.items():
        peak, last = int(c.idxmax()), int(c.index.max())
        fine = 20 <= peak <= 30 and c[last] <= c.max() - FALL
        ok &= fine
        parts.append(f"{act}: peak {c.max():.4f} at {peak}, {c[last]:.4f} at {last}")
    missing = sorted(set(("relu", "leaky_relu", "swish")) - set(curves))
    note = f" ({', '.join(missing)} not in this grid)" if missing else ""
    return (HOLDS if ok else FAILS), "; ".join(parts) + note


def _keeps_rising(stats: pd.DataFrame) -> tuple[str, str]:
    c = _curve(stats, "improved", "relu")
    if len(c) < 2 or c.index.max() < 100:
        return ABSENT, "needs improved relu cells at 100 epochs and at least one shorter"
    at100, first = c[100], int(c.index.min())
    ok = at100 >= c.max() - RISE_SLACK and at100 > c[first]
    return (
        HOLDS if ok else FAILS
    ), f"{at100:.4f} at 100, best {c.max():.4f} at {int(c.idxmax())}, {c[first]:.4f} at {first}"


def _leaky_early(stats: pd.DataFrame) -> tuple[str, str]:
    base = stats[(stats["arch"] == "baseline") & stats["epochs"].between(10, 20) & stats["ours"].notna()]
    early = [
        e for e, g in base.groupby("epochs") if "leaky_relu" in set(g["activation"]) and g["activation"].nunique() > 1
    ]
    if not early:
        return ABSENT, "needs baseline leaky_relu and another activation at 10-20 epochs"
    parts, ok = [], True
    for e in early:
        g = base[base["epochs"] == e].set_index("activation")["ours"]
        ok &= g.idxmax() == "leaky_relu"
        parts.append(f"@{e}: " + ", ".join(f"{a} {v:.4f}" for a, v in g.sort_values(ascending=False).items()))
    return (HOLDS if ok else FAILS), "; ".join(parts)


FINDING_RULES: tuple[tuple[str, str, Callable[[pd.DataFrame], tuple[str, str]]], ...] = (
    (
        "The baseline peaks early (20-30 epochs), then falls, with every activation",
        f"for every baseline activation with cells at 20 or 30 epochs and at 50+: the best epoch count is 20-30 "
        f"and the longest is at least {FALL:g} below the best",
        _peaks_early,
    ),
    (
        "The improved model keeps rising to 100 epochs",
        f"improved relu: the 100-epoch value is within {RISE_SLACK:g} of the best epoch count's and above the "
        "shortest's",
        _keeps_rising,
    ),
    (
        "leaky_relu is strongest early on the baseline",
        "at every epoch count of 10-20 with baseline leaky_relu and another activation: leaky_relu is the highest",
        _leaky_early,
    ),
)


# ---- the whole verdict -----------------------------------------------------------------------------------


def _caveats(recipe: str, spec: dict) -> list[str]:
    out = [] if recipe == "paper" else [f"recipe {recipe!r} is not the paper's protocol"]
    subset = {k: spec.get(k) for k in ("max_train_images", "max_eval_images") if spec.get(k)}
    if subset:
        out.append("trained and evaluated on subsets (" + ", ".join(f"{k} {v}" for k, v in subset.items()) + ")")
    if spec.get("val_size", 10_000) != 10_000:
        out.append(f"validation split of {spec['val_size']} images, not the paper's 10,000")
    return out


def verdict(results: pd.DataFrame, spec: dict | None = None) -> Verdict:
    """The verdict on the `paper` recipe's cells (another recipe's when the grid has no `paper` cells)."""
    stats = cell_stats(results)
    recipes = sorted(set(stats["recipe"]))
    recipe = "paper" if "paper" in recipes or not recipes else recipes[0]
    stats = stats[stats["recipe"] == recipe]
    comparisons = tuple(_compare(p, stats) for p in published.PUBLISHED)
    findings = tuple(Finding(claim, rule, *check(stats)) for claim, rule, check in FINDING_RULES)
    return Verdict(recipe, comparisons, findings, tuple(_caveats(recipe, spec or {})))


def _num(x: float, fmt: str = ".4f") -> str:
    return "" if math.isnan(x) else format(x, fmt)


def comparison_rows(v: Verdict) -> list[dict[str, str]]:
    """The comparisons as display strings, one dict per published value."""
    rows = []
    for c in v.comparisons:
        ours = _num(c.ours) + (f" ± {c.std:.4f}" if c.n > 1 and not math.isnan(c.std) else "")
        rows.append(
            {
                "table": c.table,
                "cell": f"{c.arch} {c.activation} @ {c.epochs}",
                "published": f"{c.published:g}",
                "ours": ours,
                "n": str(c.n) if c.n else "",
                "diff": _num(c.diff, "+.4f"),
                "tolerance": f"±{c.tolerance:.3f}" if c.n else "",
                "verdict": c.status,
            }
        )
    return rows


def to_markdown(v: Verdict) -> str:
    """The verdict as Markdown: headline, the values, the findings, the rules, the caveats."""
    rows = comparison_rows(v)
    head = list(rows[0]) if rows else []
    lines = [f"**Verdict ({v.recipe} recipe): {v.headline}.**", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r.values()) + " |" for r in rows]
    lines += ["", f"Ours: test_acc_as_published, mean ± std over seeds (n = ok seeds). {RULE}.", ""]
    lines += [f"- **{f.status}**: {f.claim}. {f.evidence}. Rule: {f.rule}." for f in v.findings]
    lines += [f"- caveat: {c}" for c in v.caveats]
    return "\n".join(lines) + "\n"
