"""The grid on a multi-node Ray cluster on loopback, with shards and storage on a loopback S3 server that
every node reads: trainings spread over nodes, and a node removed mid-run costs no cell."""

from __future__ import annotations

import threading

import pandas as pd
import pyarrow.fs as pafs
import pytest

from data import fs as data_fs
from grid.cli import build_spec, main, parser
from grid.experiment.plan import plan
from grid.experiment.results import read_outcome
from tests.ray_helpers import reference_history, wait_for, without_timings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_grid_spreads_over_nodes_and_survives_losing_one(s3_bucket, slow_shards, tmp_path, faults):
    from ray.cluster_utils import Cluster

    s3, shards_path = data_fs.resolve(s3_bucket.uri("shards"))
    pafs.copy_files(slow_shards, shards_path, destination_filesystem=s3)
    # Started after s3_bucket set the AWS environment: every node's processes inherit the endpoint.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "resources": {"TRAIN_DRIVER": 8}})
    workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
    cluster.wait_for_nodes()
    out = tmp_path / "multinode"
    args = [
        "--archs",
        "improved",
        "--activations",
        "relu",
        "leaky_relu",
        "swish",
        "--epochs",
        "1",
        "2",
        "3",
        "4",
        "5",
        "--val-size",
        "300",
        "--wandb",
        "disabled",
        "--address",
        cluster.address,
        "--data",
        s3_bucket.uri("shards"),
        "--storage",
        s3_bucket.uri("runs"),
        "--out",
        str(out),
    ]
    plans = plan(build_spec(parser().parse_args(args), out.name))
    _, runs_path = data_fs.resolve(s3_bucket.uri("runs"))

    def outcome(training_id: str):
        return read_outcome(s3, f"{runs_path}/{out.name}.{training_id}")

    result: dict = {}
    grid = threading.Thread(target=lambda: result.setdefault("code", main(args)))
    grid.start()
    try:

        def victim():
            for p in plans:
                o = outcome(p.training_id)
                if o.status == "running" and len(o.history) >= 2:
                    return p, o.runs[-1]["node_id"]
            return None

        wait_for(lambda: victim() is not None, 900, "a training two checkpoints in", every=0.5)
        lost, node_id = victim()
        cluster.remove_node(next(w for w in workers if w.node_id == node_id))
        grid.join(1800)
        assert result.get("code") == 0
    finally:
        import ray

        ray.shutdown()  # the grid's driver connection, if a failure left it open: removing nodes needs none
        cluster.shutdown()

    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 15 and set(results["status"]) == {"ok"}  # every cell
    outcomes = {p.training_id: outcome(p.training_id) for p in plans}
    nodes = {r["node_id"] for o in outcomes.values() for r in o.runs}
    assert len(nodes) >= 2
    moved = outcomes[lost.training_id].runs
    assert len(moved) == 2 and moved[0]["node_id"] == node_id != moved[1]["node_id"] and moved[1]["from_epoch"] >= 1
    assert without_timings(outcomes[lost.training_id].history) == without_timings(
        reference_history(lost.config, slow_shards)
    )
    print(
        f"multi-node: {len(workers)} worker nodes, trainings ran on {len(nodes)} nodes, "
        f"1 training resumed on another node from epoch {moved[1]['from_epoch']}, "
        f"{len(results)}/{len(results)} cells complete"
    )
    faults.record(survived=True)
