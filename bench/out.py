"""Where the GPU benchmarks leave their figures: the device tool brings back what a run writes under $OUT."""

import json
import os
from pathlib import Path


def write_report(report: dict, name: str) -> None:
    """`report` as JSON in $OUT/`name`, when OUT is set."""
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"], name)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")
