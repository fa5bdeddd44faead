"""One training: a model, a recipe and CIFAR-10 resident on one device, advanced one epoch at a time.

The grid's Ray layers drive it (run an epoch, report, checkpoint, stop); nothing here knows about Ray.
On the CPU a training is bit-reproducible: the same config and seed give the same numbers, an interrupted and
resumed training gives those of an uninterrupted one, and (for recipes that don't depend on the total epochs)
the first k epochs of an N-epoch training are a k-epoch training.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

import models
from grid.files import PREDICTIONS_FILE, SUBMISSION_FILE
from grid.train import checkpoint
from grid.train.artifacts import plot_predictions, write_submission
from grid.train.config import TrainConfig
from grid.train.cuda_graph import GraphedStep
from grid.train.device_data import DeviceSplit, Normalize, ResidentData, random_crop_flip
from grid.train.evaluate import (
    PUBLISHED_BATCH,
    PublishedPass,
    depends_on_mode,
    eval_batch_size,
    loss_and_correct,
    predictions,
)

METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_acc",
    "test_acc_as_published",
    "lr",
    "epoch_seconds",
    "eval_seconds",
    "images_per_second",
    "finished_at",
)
# The metrics that time the machine, not the training: they differ between runs that give the same numbers.
TIMING_KEYS = ("epoch_seconds", "eval_seconds", "images_per_second", "finished_at")
PUBLISHED_ORDER_SEED = 0  # the published-style evaluation's fixed, mixed order of the test set


class Diverged(RuntimeError):
    """The epoch's train loss was NaN or infinite."""

    def __init__(self, epoch: int, train_loss: float) -> None:
        super().__init__(f"diverged in epoch {epoch}: train loss {train_loss}")
        self.epoch = epoch
        self.train_loss = train_loss


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's `device`: "auto" is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but CUDA is not available")
    return torch.device(name)


class Training:
    def __init__(
        self,
        cfg: TrainConfig,
        data,
        device: torch.device | str | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        cuda_graph: bool = True,
    ) -> None:
        """`data` is a `data.Cifar10`, or its splits already on the device (a `ResidentData`). `device` None:
        from `cfg.device`. Under torch.distributed (initialised, world_size > 1) the model is wrapped in DDP
        and each rank trains on its slice of every global batch.
        `cuda_graph`: replay the training step as a CUDA graph where `graph_supported` (same numbers as eager
        up to float rounding)."""
        self.cfg = cfg
        self.recipe = cfg.recipe_spec
        self.device = resolve_device(cfg.device) if device is None else torch.device(device)
        if cfg.threads:  # the one place threads are set: the grid's worker gets exactly the CPUs it reserved
            torch.set_num_threads(cfg.threads)
        self.rank, self.world_size = rank, world_size
        self.distributed = world_size > 1 and dist.is_available() and dist.is_initialized()
        self._place_data(data)
        self._build_model()
        self._build_optimization()
        self.use_cuda_graph = cuda_graph and self.graph_supported
        self._graphed = self._new_graphed_step()
        self.eval_batch = eval_batch_size(self._forward, self.model, self.train_set.images[:1])
        # The notebooks' train-mode test pass; None where train mode computes what eval mode does (no dropout,
        # no BatchNorm), and test_acc_as_published is test_acc. Its graph outlives load_checkpoint, whose
        # load_state_dict copies into the captured parameters and buffers in place.
        self.published = None
        if depends_on_mode(self.model):
            self.published = PublishedPass(
                self.model, self._forward, self.test_set, self.published_batches, graphed=self.use_cuda_graph
            )
        self.epoch = 0
        self.history: list[dict[str, float]] = []

    def _place_data(self, data) -> None:
        resident = data if isinstance(data, ResidentData) else ResidentData.of(data, self.device)
        if resident.device.type != self.device.type:
            raise ValueError(f"the data is on {resident.device}, the training on {self.device}")
        self.classes, self.test_ids = resident.classes, resident.test_ids
        self.train_set, self.val_set, self.test_set = resident.train, resident.val, resident.test
        on_cuda = self.device.type == "cuda"
        recipe = self.recipe
        # The layout is speed only: on CUDA the recipe's (with its bf16), on the CPU the architecture's measured one.
        self.channels_last = recipe.channels_last if on_cuda else models.CPU_CHANNELS_LAST[self.cfg.arch]
        self.normalize = Normalize(recipe.mean, recipe.std, self.device, self.channels_last)
        # Evaluation doesn't touch the training's numerics, so it takes the layout that measured faster
        # everywhere (docs/design.md, "Measured choices").
        self.eval_normalize = Normalize(recipe.mean, recipe.std, self.device, channels_last=True)
        bf16 = recipe.bf16_autocast and on_cuda
        self._autocast = (lambda: torch.autocast("cuda", torch.bfloat16)) if bf16 else contextlib.nullcontext

        # Evaluation: each rank takes its shard and the sums are all-reduced (every rank reports the same).
        self.val_shard, self.test_shard = self._shard(self.val_set), self._shard(self.test_set)
        fixed = torch.Generator().manual_seed(PUBLISHED_ORDER_SEED)
        self.mixed_test_order = torch.randperm(len(self.test_set), generator=fixed).to(self.device)
        self.published_batches = self.mixed_test_order.split(PUBLISHED_BATCH)[self.rank :: self.world_size]
        # Metric accumulators, on the device so a step never waits for the host (graph-captured in place).
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._correct = torch.zeros((), dtype=torch.int64, device=self.device)

    def _build_model(self) -> None:
        torch.manual_seed(self.cfg.seed)  # the initial weights; dropout's draws continue this stream
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        self.model = models.build(self.cfg.arch, self.cfg.activation).to(self.device, memory_format=memory_format)
        self.net: nn.Module = self.model  # what training steps call; evaluation calls the bare model
        if self.distributed:
            on_cuda = self.device.type == "cuda"
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if on_cuda else None)
            # DDP broadcast rank 0's weights; from here each rank draws its own dropout masks.
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.rank)

    def _build_optimization(self) -> None:
        cfg, recipe = self.cfg, self.recipe
        self.batch_size = cfg.effective_batch_size  # global; a rank's share is batch_size // world_size
        if self.distributed and self.batch_size % self.world_size:
            raise ValueError(f"batch size {self.batch_size} is not divisible by world size {self.world_size}")
        n = len(self.train_set)
        # Every step of a DDP epoch needs a full batch on every rank, so it drops a last partial global batch.
        self.steps_per_epoch = n // self.batch_size if self.distributed else math.ceil(n / self.batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} training images are fewer than one batch of {self.batch_size}")
        lr = cfg.effective_lr
        self.optimizer = recipe.optimizer(self.model.parameters(), lr)
        self.scheduler = recipe.scheduler(self.optimizer, lr, self.steps_per_epoch * cfg.epochs)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.shuffle_generator = torch.Generator().manual_seed(cfg.seed)
        self.augment_generator = torch.Generator(self.device).manual_seed(cfg.seed + 1) if recipe.augment else None

    @property
    def graph_supported(self) -> bool:
        """A captured step bakes in the lr and can't hold DDP's collectives or draws from a generator of our
        own (augmentation), so: CUDA, one process, constant lr, no augmentation. Every registered architecture
        is graph-safe: no host syncs or data-dependent control flow, and dropout draws from the default CUDA
        generator, which graphs handle."""
        return (
            self.device.type == "cuda" and not self.distributed and self.scheduler is None and not self.recipe.augment
        )

    # ---- training ---------------------------------------------------------------------------------------

    def run_epoch(self, on_step: Callable[[int], None] | None = None) -> dict[str, float]:
        """Trains one epoch, evaluates, appends the metrics to `.history` and returns them.
        `on_step(step)`: called from the host after each training step (no device sync)."""
        for step, indices in enumerate(self.begin_epoch(), start=1):
            self.train_step(indices)
            if on_step is not None:
                on_step(step)
        return self.end_epoch()

    # An epoch in three parts, so that a pack can interleave its members' steps: begin_epoch, train_step on
    # each of its batches in order, end_epoch. run_epoch is exactly that.

    def begin_epoch(self) -> tuple[Tensor, ...]:
        """Starts an epoch: draws its shuffle and returns this rank's batches of indices, to train in order."""
        self._epoch_lr = self.optimizer.param_groups[0]["lr"]  # the epoch's first step's lr
        self._epoch_start = time.perf_counter()
        self._epoch_sums: tuple[tuple[int, float, float], float] | None = None
        self.net.train()
        self._loss_sum.zero_()
        self._correct.zero_()
        return self._epoch_batches()

    def train_step(self, indices: Tensor) -> None:
        """One step of the epoch begun (graph-replayed where the training uses CUDA graphs)."""
        (self._graphed or self._train_step)(indices)

    def sync_epoch(self) -> None:
        """Ends the training part of the epoch begun with its one host sync (end_epoch does it when not done
        before: a pack syncs all its members before any of them evaluates)."""
        self._epoch_sums = (self._epoch_totals(), time.perf_counter())

    def end_epoch(self) -> dict[str, float]:
        """Ends the epoch begun: Diverged on a non-finite loss, else evaluates and records."""
        if self._epoch_sums is None:
            self.sync_epoch()
        (images, loss_sum, correct), trained = self._epoch_sums
        start, self._epoch_sums = self._epoch_start, None
        if not math.isfinite(loss_sum):
            raise Diverged(self.epoch + 1, loss_sum / images)
        evaluation = self._evaluate()
        self.epoch += 1
        metrics = {
            "epoch": self.epoch,
            "train_loss": loss_sum / images,
            "train_acc": correct / images,
            **evaluation,
            "lr": self._epoch_lr,
            "epoch_seconds": trained - start,
            "eval_seconds": time.perf_counter() - trained,
            "images_per_second": images / (trained - start),
            "finished_at": time.time(),  # wall clock: what happens between epochs shows in the gaps
        }
        self.history.append(metrics)
        return metrics

    def _epoch_totals(self) -> tuple[int, float, float]:
        """(images trained on, summed loss, correct predictions) over all ranks; the epoch's one host sync."""
        totals = torch.stack([self._loss_sum, self._correct.double()])
        if self.distributed:
            dist.all_reduce(totals)
        loss_sum, correct = totals.tolist()
        images = self.steps_per_epoch * self.batch_size if self.distributed else len(self.train_set)
        return images, loss_sum, correct

    def _epoch_batches(self) -> tuple[Tensor, ...]:
        """This rank's batches of the epoch's permutation (the same on every rank: one seed)."""
        order = torch.randperm(len(self.train_set), generator=self.shuffle_generator).to(self.device)
        if not self.distributed:
            return order.split(self.batch_size)
        steps, share = self.steps_per_epoch, self.batch_size // self.world_size
        return order[: steps * self.batch_size].view(steps, self.world_size, share)[:, self.rank].unbind(0)

    def _train_step(self, indices: Tensor) -> None:
        # Lean on purpose: index the resident uint8 set, normalise in float32, no host sync.
        images = self.train_set.images[indices]
        if self.augment_generator is not None:
            images = random_crop_flip(images, self.augment_generator)
        labels = self.train_set.labels[indices]
        with self._autocast():
            logits = self.net(self.normalize(images))
            loss = self.loss_fn(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self._loss_sum += loss.detach() * labels.shape[0]
        self._correct += (logits.argmax(1) == labels).sum()

    def _new_graphed_step(self) -> GraphedStep | None:
        return GraphedStep(self._train_step, self.batch_size, self.device) if self.use_cuda_graph else None

    # ---- evaluation -------------------------------------------------------------------------------------

    def _forward(self, images: Tensor) -> Tensor:
        """Evaluation's forward of uint8 images through the bare model (not DDP's wrapper)."""
        with self._autocast():
            return self.model(self.eval_normalize(images))

    def _shard(self, split: DeviceSplit) -> DeviceSplit:
        if not self.distributed:
            return split
        part = slice(*(len(split) * r // self.world_size for r in (self.rank, self.rank + 1)))
        return DeviceSplit(split.images[part], split.labels[part])

    def eval_mode_totals(self) -> Tensor:
        """[val loss sum, val correct, test loss sum, test correct] over this rank's shards, in eval mode; on the
        device (no host sync). Leaves the model in train mode."""
        self.model.eval()
        shards = (self.val_shard, self.test_shard)
        totals = torch.cat([loss_and_correct(self._forward, shard, self.eval_batch) for shard in shards])
        self.model.train()
        return totals

    def _evaluate(self) -> dict[str, float]:
        val_test = self.eval_mode_totals()
        if self.published is not None:
            seed = (self.cfg.seed * 1_000_003 + self.epoch) * 101 + self.rank  # fixed per epoch
            published = self.published(seed)
        else:  # the same function in train mode: the notebooks' pass would repeat the eval-mode predictions
            published = val_test[3]
        totals = torch.cat([val_test[[0, 1, 3]], published.double().view(1)])
        if self.distributed:
            dist.all_reduce(totals)
        val_loss, val_correct, test_correct, published_correct = totals.tolist()
        n_val, n_test = len(self.val_set), len(self.test_set)
        return {
            "val_loss": val_loss / n_val,
            "val_acc": val_correct / n_val,
            "test_acc": test_correct / n_test,
            "test_acc_as_published": published_correct / n_test,
        }

    # ---- checkpoints and artifacts ------------------------------------------------------------------------

    def _generators(self) -> dict[str, torch.Generator | None]:
        return {"shuffle": self.shuffle_generator, "augment": self.augment_generator}

    def save_checkpoint(self, folder: str | os.PathLike[str]) -> Path:
        """`folder`/state.pt (everything to continue exactly) + `folder`/metrics.json (the history)."""
        state = {
            "training_id": self.cfg.training_id,
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": checkpoint.capture_rng(self.device, self._generators()),
            "history": self.history,
        }
        return checkpoint.save(folder, state)

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Continues exactly where `save_checkpoint` left off; the checkpoint must be of this training_id."""
        state = checkpoint.load(folder)
        if state["training_id"] != self.cfg.training_id:
            raise ValueError(f"{folder}: checkpoint of {state['training_id']}, not {self.cfg.training_id}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"], self.device, self._generators())
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        self._graphed = self._new_graphed_step()  # the old graph captured the replaced optimizer state

    def write_artifacts(self, folder: str | os.PathLike[str]) -> list[Path]:
        """`folder`/submission.csv (the test predictions, `id,label`) and `folder`/predictions.png."""
        folder = Path(folder)
        self.model.eval()
        predicted = predictions(self._forward, self.test_set.images, self.eval_batch).tolist()
        self.model.train()
        shown = self.mixed_test_order[:12]  # the test files are sorted by class: show a mix, as the paper did
        images, labels = self.test_set.images[shown].cpu(), self.test_set.labels[shown].tolist()
        return [
            write_submission(folder / SUBMISSION_FILE, self.test_ids, predicted, self.classes),
            plot_predictions(
                folder / PREDICTIONS_FILE, images, [predicted[i] for i in shown.tolist()], labels, self.classes
            ),
        ]
