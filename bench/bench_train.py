"""Training speed on this machine, every figure measured side by side in one run (ratios, not absolutes:
the CPU is shared and noisy). A measurement, not a test: it prints figures and exits 0.

    .venv/bin/python bench/bench_train.py --data /tmp/shards-jpeg [--threads T] [--rounds 2] [--steps 300]

1. `paper` training of each architecture against its floor: the same model, optimizer and batches in a bare
   loop over float tensors already in memory. Whole 40,000-image epochs for baseline, --steps steps for the
   others. Target: within 1.1x.
2. baseline against the paper's own input pipeline (torchvision ImageFolder + DataLoader, 2 workers, batch 32,
   shuffle, ToTensor + Normalize) over the same images as JPEG files. Target: at least 4x faster.
3. Evaluation (20,000 validation + test images, eval mode) against a training epoch; target under 10%. The
   published-style evaluation (10,000 test images, train mode, batches of 32) is printed separately, and so is
   what the evaluation's convolutions and matrix products alone take (torch.profiler's self time): the floor
   of an exact fp32 evaluation with PyTorch's CPU kernels, whatever is done around them.
Each measurement is repeated --rounds times, interleaved with its comparison; the best time of each is used.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
import models  # noqa: E402
from data.download import shared_jpeg_copy  # noqa: E402
from grid.train.config import TrainConfig  # noqa: E402
from grid.train.evaluate import PublishedPass  # noqa: E402
from grid.train.recipes import RECIPES  # noqa: E402
from grid.train.training import Training  # noqa: E402

SHARED_JPEG = str(shared_jpeg_copy())  # $CIFAR_GRID_SHARED_DATA, else ../shared/data/cifar10-jpeg.tar.gz
PAPER = RECIPES["paper"]


def floor_seconds(model: nn.Module, optimizer, inputs: torch.Tensor, labels: torch.Tensor, order) -> float:
    """The bare loop: nothing but the model, the loss and the optimizer over in-memory float batches."""
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for batch in order.split(PAPER.batch_size):
        loss = loss_fn(model(inputs[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def subset(cifar: data.Cifar10, n_train: int) -> data.Cifar10:
    t = cifar.train
    train = data.Split(t.images[:n_train], t.labels[:n_train], t.ids[:n_train])
    return data.Cifar10(train, cifar.val, cifar.test, cifar.classes, cifar.manifest_sha256, cifar.uri)


def training_vs_floor(arch: str, cifar: data.Cifar10, rounds: int, steps: int | None) -> tuple[dict, Training]:
    """Per-step seconds of `Training` (train part of run_epoch) and of the floor, best of `rounds`."""
    cifar = subset(cifar, steps * PAPER.batch_size) if steps else cifar
    training = Training(TrainConfig(arch=arch, activation="relu", device="cpu"), cifar)
    torch.manual_seed(0)
    model = models.build(arch, "relu")
    optimizer = PAPER.optimizer(model.parameters(), PAPER.lr)
    inputs = training.normalize(training.train_set.images)  # floor gets its inputs for free
    labels = training.train_set.labels
    n_steps = training.steps_per_epoch
    ours, floor, evals = [], [], []
    for _ in range(rounds):
        order = torch.randperm(len(labels))
        floor.append(floor_seconds(model, optimizer, inputs, labels, order) / n_steps)
        metrics = training.run_epoch()
        ours.append(metrics["epoch_seconds"] / n_steps)
        evals.append(eval_seconds(training))
    result = {
        "ours": min(ours),
        "floor": min(floor),
        "steps": n_steps,
        "eval": min(e[0] for e in evals),
        "published": min(e[1] for e in evals),
        "kernels": eval_floor_seconds(training),
    }
    return result, training


def eval_seconds(training: Training) -> tuple[float, float]:
    """(val + test in eval mode, published-style test) seconds, each ended by its host sync."""
    start = time.perf_counter()
    training.eval_mode_totals().tolist()
    evaluated = time.perf_counter()
    PublishedPass(training.model, training._forward, training.test_set, training.published_batches)(0).item()
    return evaluated - start, time.perf_counter() - evaluated


def eval_floor_seconds(training: Training) -> float:
    """Seconds of the eval-mode pass over validation + test spent in convolution and matrix-product kernels."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        training.eval_mode_totals()
    kernels = ("aten::mkldnn_convolution", "aten::convolution", "aten::addmm", "aten::mm")
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in kernels) / 1e6


def extract_train_jpegs(tar: str, dest: Path) -> Path:
    root = dest / "cifar10-jpeg" / "train"
    if not root.is_dir():
        with tarfile.open(tar) as f:
            f.extractall(dest, members=[m for m in f if m.name.startswith("cifar10-jpeg/train/")], filter="data")
    return root


def paper_pipeline_epoch(root: Path, ids: list[str]) -> float:
    """One epoch of the notebooks' pipeline: ImageFolder + DataLoader(2 workers, batch 32, shuffle)."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(PAPER.mean, PAPER.std)
    folder = datasets.ImageFolder(str(root), transforms.Compose([transforms.ToTensor(), normalize]))
    wanted = {i.removeprefix("train/") for i in ids}
    indices = [k for k, (path, _) in enumerate(folder.samples) if str(Path(path).relative_to(root)) in wanted]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(folder, indices), batch_size=PAPER.batch_size, shuffle=True, num_workers=2
    )
    torch.manual_seed(0)
    model = models.build("baseline", "relu")
    optimizer = torch.optim.SGD(model.parameters(), lr=PAPER.lr, momentum=PAPER.momentum)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for images, labels in loader:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="shards of the shared JPEG copy")
    p.add_argument("--jpeg-tar", default=SHARED_JPEG)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=300, help="steps timed for improved and resnet18")
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS))
    p.add_argument("--skip-pipeline", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cifar = data.load(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.rounds} rounds")

    trainings: dict[str, Training] = {}
    for arch in args.archs:
        steps = None if arch == "baseline" else args.steps
        r, trainings[arch] = training_vs_floor(arch, cifar, args.rounds, steps)
        epoch = r["ours"] * 1250  # a 40,000-image epoch
        print(
            f"{arch:>9}: {r['ours'] * 1e3:7.2f} ms/step vs floor {r['floor'] * 1e3:7.2f} ms/step "
            f"({r['steps']} steps): {r['ours'] / r['floor']:.3f}x floor (target <= 1.1)"
        )
        print(
            f"{'':>9}  eval of 20,000 val+test images {r['eval']:.2f}s = {r['eval'] / epoch:.1%} of a "
            f"{epoch:.1f}s epoch (target < 10%); published-style 10,000 test images {r['published']:.2f}s "
            f"= {r['published'] / epoch:.1%}"
        )
        print(
            f"{'':>9}  of which convolutions and matrix products {r['kernels']:.2f}s = {r['kernels'] / epoch:.1%} "
            f"of the epoch: the floor of an exact fp32 evaluation with these kernels"
        )

    if not args.skip_pipeline and "baseline" in trainings:
        pipeline, ours = [], []
        with tempfile.TemporaryDirectory() as tmp:
            root = extract_train_jpegs(args.jpeg_tar, Path(tmp))
            for _ in range(args.rounds):
                pipeline.append(paper_pipeline_epoch(root, cifar.train.ids))
                ours.append(trainings["baseline"].run_epoch()["epoch_seconds"])
        pipeline, ours = min(pipeline), min(ours)
        print(
            f" pipeline: paper's ImageFolder + DataLoader epoch {pipeline:.1f}s vs ours {ours:.1f}s: "
            f"{pipeline / ours:.1f}x faster (target >= 4)"
        )


if __name__ == "__main__":
    main()
