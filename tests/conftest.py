"""Shared fixtures: synthetic CIFAR-10 shards for grid tests, and the fault suite's ledger."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import data
from tests.fixtures_data import synthetic, write_official

pytest_plugins = ["tests.s3_server"]  # the loopback S3 server fixtures


def _synthetic_shards(factory, name: str, n_train: int, n_test: int, seed: int) -> str:
    root = factory.mktemp(name)
    source = write_official(root / "source", synthetic(n_train=n_train, n_test=n_test, seed=seed))
    data.prepare(str(source), str(root / "shards"))
    return str(root / "shards")


@pytest.fixture(scope="session")
def grid_shards(tmp_path_factory) -> str:
    """Shards of a small synthetic CIFAR-10 (official python-batch format): 400 train, 100 test images."""
    return _synthetic_shards(tmp_path_factory, "grid-data", 400, 100, seed=1)


@pytest.fixture(scope="session")
def slow_shards(tmp_path_factory) -> str:
    """Synthetic shards big enough for multi-second epochs of `improved`: 1,500 train, 200 test images."""
    return _synthetic_shards(tmp_path_factory, "slow-data", 1500, 200, seed=2)


@dataclass
class FaultLedger:
    injected: int = 0
    survived: int = 0
    lost: int = 0  # results lost to a fault: must stay 0
    in_packs: int = 0  # of the injected faults, those that hit a pack of several trainings

    def record(self, survived: bool, lost: int = 0, *, pack: bool = False) -> None:
        self.injected += 1
        self.survived += int(survived)
        self.lost += lost
        self.in_packs += int(pack)


_LEDGER = FaultLedger()


@pytest.fixture
def faults() -> FaultLedger:
    """Fault tests record each injected fault here; the session summary prints the totals."""
    return _LEDGER


def pytest_terminal_summary(terminalreporter) -> None:
    if _LEDGER.injected:
        terminalreporter.write_line(
            f"faults: injected {_LEDGER.injected}, survived {_LEDGER.survived}, results lost {_LEDGER.lost}"
            f" ({_LEDGER.in_packs} of them in packs)"
        )
