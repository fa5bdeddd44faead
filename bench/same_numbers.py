"""Prints 2 epochs of each architecture's metrics on the CPU as JSON (timings dropped), for a refactor's
before/after check: the same shards and commit-to-commit `cmp` of the output must show no difference.

    python bench/same_numbers.py --data SHARDS > before.json   # then, on the new code, > after.json; cmp
"""

import argparse
import json

import torch

import data
from grid.train.config import TrainConfig
from grid.train.training import TIMING_KEYS, Training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a shard folder (python -m data.prepare makes one)")
    p.add_argument("--images", type=int, default=1200, help="a seeded class-stratified training subset")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = {}
    for arch, activation in (("baseline", "relu"), ("improved", "swish"), ("resnet18", "relu")):
        cfg = TrainConfig(
            arch=arch,
            activation=activation,
            seed=1,
            epochs=2,
            device="cpu",
            max_train_images=args.images,
            max_eval_images=args.images // 4,
        )
        training = Training(cfg, data.load(args.data, max_train_images=args.images, max_eval_images=args.images // 4))
        for _ in range(cfg.epochs):
            training.run_epoch()
        out[arch] = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in training.history]
    print(json.dumps(out, sort_keys=True, indent=1))


if __name__ == "__main__":
    main()
