"""The grid's schedule: costliest first onto every place, and the wall time that order takes."""

import pytest

from grid.experiment.plan import packs, plan
from grid.experiment.schedule import Schedule, makespan, schedule
from grid.experiment.spec import PRESETS, GridSpec


def test_makespan_is_list_scheduling_in_the_order_given() -> None:
    assert makespan([], [], 2) == 0.0
    assert makespan([], [10, 10, 10], 2) == 20.0
    assert makespan([], [30, 10, 10, 10], 2) == 30.0  # the long one alone, the short ones beside it
    assert makespan([], [10, 10, 10, 30], 2) == 40.0  # the long one last: 40 s where 30 s would do
    assert makespan([5.0], [10, 10], 2) == 15.0  # running ones keep their places until they end
    assert makespan([], [7], 4) == 7.0


def test_costliest_trainings_start_first() -> None:
    """resnet18 (74 MFLOPs/image) before improved (23) before baseline (1.3) where nothing is timed (a cluster);
    a resumed training counts only the epochs it has left."""
    spec = GridSpec(name="t", archs=("baseline", "improved", "resnet18"), activations=("relu",), epochs=(10, 20))
    alone = packs(plan(spec), 1)
    ids = [g.pack_id for g in schedule(spec, alone, {}, "auto").order]
    assert [i.split("-")[0] for i in ids] == ["resnet18", "improved", "baseline"]
    improved = next(i for i in ids if i.startswith("improved"))
    assert schedule(spec, alone, {improved: 19}, "auto").order[-1].pack_id == improved  # 1 x 23 < 20 x 1.3


def test_costliest_packs_first() -> None:
    spec = GridSpec(name="c", archs=("baseline", "improved"), activations=("relu", "swish"), epochs=(10,))
    grouped = packs(plan(spec), 2)
    order = schedule(spec, grouped, {}, address="auto").order  # a cluster: nothing is timed here
    assert [g.members[0].config.arch for g in order] == ["improved", "baseline"]
    finished = {t: 10 for t in grouped[1].training_ids}  # the improved pack is done: nothing left to cost
    assert [g.members[0].config.arch for g in schedule(spec, grouped, finished, "auto").order] == [
        "baseline",
        "improved",
    ]


def test_a_schedule_describes_its_time_against_the_ideal() -> None:
    grouped = packs(plan(GridSpec(name="s", **{**PRESETS["published"], "seeds": (0,)})), 1)
    costs = {g.pack_id: 100.0 * len(g.members) for g in grouped}
    s = Schedule(grouped, costs, 2, {"baseline": 1.0})
    assert s.seconds == 300.0 and s.ideal == 250.0
    assert "5 trainings, 2 at a time, costliest first; estimated 5 min on this machine (ideal 4 min" in s.describe()
    assert "known once the first trainings report" in Schedule(grouped, costs, 2, {}).describe()


@pytest.mark.parametrize("arch", ["baseline", "improved"])
def test_a_local_cpu_grid_times_its_architectures_here(arch) -> None:
    # --lr 1e30 diverges the trainings, not their estimate (speed does not depend on the lr).
    spec = GridSpec(
        name="t", archs=(arch,), activations=("relu",), epochs=(2,), max_train_images=320, device="cpu", lr=1e30
    )
    s = schedule(spec, packs(plan(spec), 1), {}, address=None)
    assert set(s.measured) == {arch} and s.measured[arch] > 0
    assert s.seconds == pytest.approx(2 * s.measured[arch])
