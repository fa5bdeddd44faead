"""The verdict: published values against ours under the stated rule, and the paper's findings checked."""

from __future__ import annotations

import math

import pandas as pd

from grid.report import verdict

# The real CPU run of baseline x 3 activations x 10..100 epochs (README, "How long it takes"), one seed.
README_RUN = {
    "relu": {10: 0.5900, 20: 0.6096, 30: 0.6060, 50: 0.5822, 100: 0.5722},
    "leaky_relu": {10: 0.5919, 20: 0.6183, 30: 0.6002, 50: 0.5861, 100: 0.5696},
    "swish": {10: 0.5850, 20: 0.6143, 30: 0.6059, 50: 0.5819, 100: 0.5635},
}


def results(curves: dict, arch: str = "baseline", seeds: dict[int, float] | None = None) -> pd.DataFrame:
    """Rows as grid.experiment.results writes them; `seeds`: seed -> offset added to every value."""
    rows = []
    for act, by_epoch in curves.items():
        for seed, shift in (seeds or {0: 0.0}).items():
            for e, acc in by_epoch.items():
                rows.append(
                    {
                        "arch": arch,
                        "activation": act,
                        "recipe": "paper",
                        "seed": seed,
                        "epochs": e,
                        "test_acc": acc + shift,
                        "test_acc_as_published": acc + shift,
                        "status": "ok",
                        "training_id": f"{arch}-{act}-paper-s{seed}",
                    }
                )
    return pd.DataFrame(rows)


def by_cell(v: verdict.Verdict) -> dict[tuple, verdict.Comparison]:
    return {(c.arch, c.activation, c.epochs): c for c in v.comparisons}


def test_the_readme_run_against_the_paper():
    v = verdict.verdict(results(README_RUN), {"name": "paper-baseline", "val_size": 10_000})
    c = by_cell(v)
    assert len(v.comparisons) == 6  # every published value is listed, in the grid or not
    assert c[("baseline", "relu", 100)].status == "consistent"  # 0.5722 vs 0.5797
    assert math.isclose(c[("baseline", "relu", 100)].diff, 0.5722 - 0.5797)
    assert c[("baseline", "leaky_relu", 10)].status == "consistent"  # 0.5919 vs 0.61
    assert c[("baseline", "swish", 100)].status == "not consistent"  # 0.5635 vs 0.5985: 0.035 apart
    assert {c[k].status for k in c if k[0] != "baseline"} == {"not in this grid"}
    peaks, rising, leaky = v.findings
    assert (peaks.status, rising.status, leaky.status) == ("holds", "not in this grid", "holds")
    assert "relu: peak 0.6096 at 20, 0.5722 at 100" in peaks.evidence
    assert v.headline.startswith("2 of 3 published values in this grid consistent with ours; 2 of 2 checkable")
    assert v.caveats == ()


def test_several_seeds_widen_the_band_to_two_std():
    curves = {"relu": {10: 0.70, 100: 0.5797 + 0.05}}
    one = by_cell(verdict.verdict(results(curves)))[("baseline", "relu", 100)]
    assert (one.n, one.status, one.tolerance) == (1, "not consistent", 0.03)
    spread = {0: -0.04, 1: 0.0, 2: 0.04}  # std 0.04: band ±0.08 holds the published value 0.05 below
    many = by_cell(verdict.verdict(results(curves, seeds=spread)))[("baseline", "relu", 100)]
    assert many.n == 3 and math.isclose(many.std, 0.04) and math.isclose(many.tolerance, 0.08)
    assert many.status == "consistent"
    tight = {0: -0.001, 1: 0.001}  # a tiny std: the band stays at least ±0.03
    assert by_cell(verdict.verdict(results(curves, seeds=tight)))[("baseline", "relu", 100)].tolerance == 0.03


def test_findings_that_do_not_hold():
    rising = {a: {10: 0.50, 20: 0.55, 30: 0.58, 50: 0.60, 100: 0.62} for a in ("relu", "leaky_relu", "swish")}
    rising["relu"] = {10: 0.55, 20: 0.55, 30: 0.58, 50: 0.60, 100: 0.62}  # relu, not leaky_relu, best early
    improved_falls = {"relu": {10: 0.68, 50: 0.74, 100: 0.70}}
    grid = pd.concat([results(rising), results(improved_falls, arch="improved")])
    peaks, keeps_rising, leaky = verdict.verdict(grid).findings
    assert (peaks.status, keeps_rising.status, leaky.status) == ("does not hold",) * 3


def test_missing_and_failed_cells_are_said_so():
    grid = results({"relu": {1: 0.3, 2: 0.35, 100: 0.6}})
    grid.loc[grid["epochs"] == 100, ["test_acc", "test_acc_as_published", "status"]] = [math.nan, math.nan, "diverged"]
    v = verdict.verdict(grid, {"max_train_images": 6000, "val_size": 100})
    assert by_cell(v)[("baseline", "relu", 100)].status == "no result"
    assert v.headline.startswith("no published value of the paper has a result in this grid")
    assert [f.status for f in v.findings] == ["not in this grid"] * 3
    assert v.caveats == (
        "trained and evaluated on subsets (max_train_images 6000)",
        "validation split of 100 images, not the paper's 10,000",
    )
    md = verdict.to_markdown(v)
    assert md.startswith("**Verdict (paper recipe): no published value of the paper") and verdict.RULE in md
    assert "| 3-1 | baseline relu @ 100 | 0.5797 |  |  |  |  | no result |" in md
