"""grid/train/pack.py: a pack's members train exactly as each would alone (bit for bit on the CPU), resume
exactly, keep the prefix property, diverge alone; the horizontally fused step's numbers. Small synthetic data."""

from __future__ import annotations

import pytest
import torch

from grid.train.config import TrainConfig
from grid.train.device_data import ResidentData
from grid.train.pack import Pack, check_packable
from grid.train.training import Diverged, Training
from tests.test_training import assert_same_weights, config, synthetic_cifar, without_timings

MIXED = [
    config(activation="relu", seed=0, epochs=2),
    config(activation="swish", seed=1, epochs=2),
    config(activation="leaky_relu", seed=2, epochs=2),
]
WITH_IMPROVED = [  # dropout draws from the global RNG: each member must draw from its own
    config(arch="improved", activation="swish", seed=0, epochs=2),
    config(arch="baseline", activation="relu", seed=1, epochs=2),
    config(arch="improved", activation="relu", seed=2, epochs=2),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return synthetic_cifar(96, 32, 64)  # 3 steps an epoch


def alone(cfg: TrainConfig, cifar, epochs: int) -> Training:
    training = Training(cfg, cifar)
    for _ in range(epochs):
        training.run_epoch()
    return training


def run_pack(configs, cifar, epochs: int, method: str = "auto") -> Pack:
    pack = Pack(configs, cifar, method=method)
    for _ in range(epochs):
        pack.run_epoch()
    return pack


def assert_members_equal_alone(pack: Pack, configs, cifar, epochs: int) -> None:
    for member, cfg in zip(pack.members, configs, strict=True):
        single = alone(cfg, cifar, epochs)
        assert member.cfg == cfg
        assert without_timings(member.history) == without_timings(single.history), cfg.training_id
        assert_same_weights(member.model, single.model)


@pytest.mark.parametrize("method", ["interleave", "epochs"])
@pytest.mark.parametrize("configs", [MIXED, WITH_IMPROVED], ids=["baseline-3-activations", "with-improved"])
def test_members_train_bit_for_bit_as_alone(tiny, configs, method) -> None:
    pack = run_pack(configs, tiny, epochs=2, method=method)
    assert pack.method == method and pack.active == []
    assert [len(m.history) for m in pack.members] == [2, 2, 2]
    assert_members_equal_alone(pack, configs, tiny, epochs=2)


def test_images_are_resident_once(tiny) -> None:
    pack = Pack(MIXED, tiny)
    images = {m.train_set.images.data_ptr() for m in pack.members}
    assert images == {pack.resident.train.images.data_ptr()}
    resident = ResidentData.of(tiny, torch.device("cpu"))
    assert Pack(MIXED, resident).members[1].test_set is resident.test


def test_a_pack_of_one_is_the_training_alone(tiny) -> None:
    cfg = config(arch="improved", epochs=2)
    assert_members_equal_alone(run_pack([cfg], tiny, epochs=2), [cfg], tiny, epochs=2)


def test_the_pack_leaves_the_global_rng_alone(tiny) -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    run_pack(WITH_IMPROVED, tiny, epochs=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_on_step_sees_each_common_step_once(tiny) -> None:
    for method in ("interleave", "epochs"):
        steps: list[int] = []
        Pack(MIXED, tiny, method=method).run_epoch(on_step=steps.append)
        assert steps == [1, 2, 3], method


def test_resumed_from_member_checkpoints_equals_uninterrupted(tiny, tmp_path) -> None:
    configs = [c.__class__(**{**c.to_dict(), "epochs": 3}) for c in WITH_IMPROVED]
    straight = run_pack(configs, tiny, epochs=3)

    first = run_pack(configs, tiny, epochs=2)
    for i in range(3):
        first.save_checkpoint(i, tmp_path / f"m{i}")
    torch.manual_seed(1234)  # whatever the process did in between must not matter
    resumed = Pack(configs, tiny)
    for i in reversed(range(3)):  # in any order
        resumed.load_checkpoint(i, tmp_path / f"m{i}")
    assert [m.epoch for m in resumed.members] == [2, 2, 2]
    resumed.run_epoch()
    for got, want in zip(resumed.members, straight.members, strict=True):
        assert without_timings(got.history) == without_timings(want.history)
        assert_same_weights(got.model, want.model)


def test_every_member_keeps_the_prefix_property(tiny) -> None:
    short = run_pack(WITH_IMPROVED, tiny, epochs=2)
    longer = [c.__class__(**{**c.to_dict(), "epochs": 4}) for c in WITH_IMPROVED]
    long = run_pack(longer, tiny, epochs=3)
    for s, lg in zip(short.members, long.members, strict=True):
        assert s.cfg.training_id == lg.cfg.training_id
        assert without_timings(lg.history[:2]) == without_timings(s.history)


def test_a_diverging_member_leaves_and_the_others_go_on(tiny) -> None:
    configs = [MIXED[0], config(activation="swish", seed=1, epochs=2, lr=1e30), MIXED[2]]
    pack = Pack(configs, tiny)
    first = pack.run_epoch()
    assert isinstance(first[1], Diverged) and "diverged in epoch 1" in str(first[1])
    assert pack.active == [0, 2] and pack.members[1].history == []
    second = pack.run_epoch()
    assert sorted(second) == [0, 2] and pack.active == []
    assert pack.run_epoch() == {}
    for i in (0, 2):
        single = alone(configs[i], tiny, 2)
        assert without_timings(pack.members[i].history) == without_timings(single.history)


def test_artifacts_per_member(tiny, tmp_path) -> None:
    pack = run_pack(MIXED[:2], tiny, epochs=1)
    paths = pack.write_artifacts(1, tmp_path)
    assert [p.name for p in paths] == ["submission.csv", "predictions.png"]


def test_unpackable_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="must share epochs"):
        check_packable([config(epochs=2), config(seed=1, epochs=3)])
    with pytest.raises(ValueError, match="must share recipe"):
        check_packable([config(), config(seed=1, recipe="modern")])
    with pytest.raises(ValueError, match="each training once"):
        check_packable([config(), config()])
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Pack([config()], synthetic_cifar(32, 8, 8), method="streams")
    with pytest.raises(ValueError, match="unknown pack method"):
        Pack([config()], synthetic_cifar(32, 8, 8), method="magic")
