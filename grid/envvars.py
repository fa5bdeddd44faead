"""Environment variables set for a `with` block, then put back as they were."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def set_temporarily(values: Mapping[str, str]) -> Iterator[None]:
    """Sets `values` in os.environ (so that child processes inherit them); on exit restores those keys alone,
    leaving whatever else changed meanwhile."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
