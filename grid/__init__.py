"""cifar-grid: the paper's CIFAR-10 grid on Ray. Three rooms, one per layer (docs/design.md has a line per module):

- `grid.train`: one training on one device (torch and `models`, never Ray or W&B); `python -m grid.train`.
- `grid.experiment`: the Ray experiment (Tune, Train, the worker, resources, MPS, W&B runs, progress).
- `grid.report`: the outputs built from a run folder (no torch, no Ray); `python -m grid.report`.

`grid.cli` is `run_grid.py`'s command line; `grid.atomic` and `grid.wandb_settings` are shared by the rooms.
"""
