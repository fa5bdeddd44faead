"""grid/train/pack.py: a pack's members train exactly as each would alone (bit for bit on the CPU), resume
exactly, keep the prefix property, diverge alone; the horizontally fused step's numbers. Small synthetic data."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import models
from grid.train.config import TrainConfig
from grid.train.device_data import ResidentData
from grid.train.fusion import FusedModels, fused_loss
from grid.train.pack import Pack, check_packable
from grid.train.recipes import RECIPES
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
    for method in ("interleave", "epochs", "fused"):
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


# ---- horizontal fusion ------------------------------------------------------------------------------------

# max |fused - alone| / max |alone| per tensor after 2 SGD steps, in float64: a wrong gradient can't hide in
# rounding there (measured <= 1e-15). In float32 the sums' other orders, with cancellation, left a gradient
# (improved, swish) 1.3% of its largest value apart, the weights within 6e-6.
FUSION_TOLERANCE = 1e-12


@pytest.mark.parametrize("arch, train_mode", [("baseline", True), ("improved", False), ("resnet18", True)])
def test_fused_steps_equal_the_members_steps(arch, train_mode) -> None:
    """Same weights, each member its own activation: 2 forward+backward+SGD(momentum) steps fused (float64),
    against each model stepped alone (improved in eval mode: no dropout; resnet18's BatchNorm in train mode,
    its running statistics included)."""
    activations = ["relu", "swish", "leaky_relu"]
    members = []
    for seed, activation in enumerate(activations):
        torch.manual_seed(seed)
        members.append(models.build(arch, activation).double().train(train_mode))
    apart = [copy.deepcopy(m) for m in members]
    fused = FusedModels(members, activations)
    fused.train(train_mode)
    paper = RECIPES["paper"]
    optimizer = paper.optimizer(fused.params.values(), 0.01)
    x, y = torch.randn(3, 8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (3, 8))
    for _ in range(2):
        loss = fused_loss(fused(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
    member_optimizers = [paper.optimizer(m.parameters(), 0.01) for m in members]
    fused.to_members(optimizer, member_optimizers)

    for k, model in enumerate(apart):
        alone_opt = paper.optimizer(model.parameters(), 0.01)
        for _ in range(2):
            loss = nn.CrossEntropyLoss()(model(x[k]), y[k])
            alone_opt.zero_grad(set_to_none=True)
            loss.backward()
            alone_opt.step()
        got = members[k].state_dict()
        for name, want in model.state_dict().items():
            if want.is_floating_point():
                assert (got[name] - want).abs().max() <= FUSION_TOLERANCE * want.abs().max(), (k, name)
            else:
                assert torch.equal(got[name], want), (k, name)
        momentum = [alone_opt.state[p]["momentum_buffer"] for p in model.parameters()]
        fused_momentum = [member_optimizers[k].state[p]["momentum_buffer"] for p in members[k].parameters()]
        for a, b in zip(fused_momentum, momentum, strict=True):
            assert (a - b).abs().max() <= FUSION_TOLERANCE * b.abs().max()


def test_fused_pack_trains_like_the_members_alone(tiny) -> None:
    pack = run_pack(MIXED, tiny, epochs=2, method="fused")
    for member, cfg in zip(pack.members, MIXED, strict=True):
        single = alone(cfg, tiny, 2)
        for got, want in zip(without_timings(member.history), without_timings(single.history), strict=True):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
        for name, want in single.model.state_dict().items():
            torch.testing.assert_close(member.model.state_dict()[name], want, rtol=1e-4, atol=1e-6)


def test_fused_pack_resumes_exactly(tiny, tmp_path) -> None:
    configs = [c.__class__(**{**c.to_dict(), "arch": "improved", "epochs": 3}) for c in MIXED]  # dropout
    straight = run_pack(configs, tiny, epochs=3, method="fused")
    first = run_pack(configs, tiny, epochs=2, method="fused")
    for i in range(3):
        first.save_checkpoint(i, tmp_path / f"m{i}")
    resumed = Pack(configs, tiny, method="fused")
    for i in range(3):
        resumed.load_checkpoint(i, tmp_path / f"m{i}")
    resumed.run_epoch()
    for got, want in zip(resumed.members, straight.members, strict=True):
        assert without_timings(got.history) == without_timings(want.history)
        assert_same_weights(got.model, want.model)


def test_fused_refuses_what_it_cannot_fuse(tiny) -> None:
    with pytest.raises(ValueError, match="needs one architecture"):
        Pack(WITH_IMPROVED, tiny, method="fused")
    with pytest.raises(ValueError, match="constant lr and no augmentation"):
        Pack([config(recipe="modern")], tiny, method="fused")


# ---- CUDA -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "method, arch",
    [
        ("streams", "improved"),  # dropout inside each member's graph, from the member's own generator state
        ("streams", "resnet18"),
        ("interleave", "improved"),
        ("fused", "baseline"),  # fused dropout masks are not the members' own: architectures without dropout
        ("fused", "resnet18"),
    ],
)
def test_cuda_pack_first_steps_train_like_alone(method, arch, monkeypatch) -> None:
    """2 epochs of 10 steps (3 eager warm-up steps, capture, replays), against each member alone: train loss
    within 1e-4 relative, weights as the graph-versus-eager test allows. In full fp32 (see that test)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cifar = synthetic_cifar(320, 32, 64)
    configs = [
        config(arch=arch, activation=a, seed=s, epochs=2, device="cuda")
        for s, a in enumerate(["relu", "swish", "leaky_relu"])
    ]
    pack = run_pack(configs, cifar, epochs=2, method=method)
    assert pack.method == method
    for member, cfg in zip(pack.members, configs, strict=True):
        single = alone(cfg, cifar, 2)  # after the pack: the pack left the process's CUDA generator alone
        for got, want in zip(member.history, single.history, strict=True):
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4), cfg.training_id
        for name, want in single.model.state_dict().items():
            torch.testing.assert_close(member.model.state_dict()[name], want, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_leaves_the_default_generator_alone() -> None:
    torch.cuda.manual_seed(3)
    before = torch.cuda.get_rng_state()
    configs = [c.__class__(**{**c.to_dict(), "device": "cuda"}) for c in WITH_IMPROVED[::2]]
    run_pack(configs, synthetic_cifar(320, 32, 64), epochs=1, method="streams")
    assert torch.equal(torch.cuda.get_rng_state(), before)
