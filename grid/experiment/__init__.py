"""The Ray experiment: the grid's spec and plan, Tune trials each driving a Ray Train `TorchTrainer`, the worker,
resources, MPS, W&B runs, progress, and the results collected from storage."""
