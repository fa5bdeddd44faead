"""The outputs built from a run folder: the published values, the paper's tables, plots, report.html and the
W&B report. Imports neither torch nor Ray (import-linter keeps it so)."""
