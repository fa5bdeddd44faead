"""The names of the files a training and a grid write, declared once for the three rooms (imports nothing)."""

# A training's checkpoint folder.
STATE_FILE = "state.pt"  # everything the training needs to continue exactly (torch.save, loaded weights_only)
METRICS_FILE = "metrics.json"  # the per-epoch history, readable without torch
STATUS_FILE = "status.json"  # the grid's word on the training at that checkpoint: status, cells, restarts, W&B

# A training's artifacts (the paper's outputs of a model).
SUBMISSION_FILE = "submission.csv"
PREDICTIONS_FILE = "predictions.png"
ARTIFACTS = (SUBMISSION_FILE, PREDICTIONS_FILE)

# A run folder.
GRID_FILE = "grid.json"  # the grid as run, for --resume
