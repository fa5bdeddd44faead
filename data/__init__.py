"""CIFAR-10 files and shards: ``prepare`` turns a source into Parquet shards, ``load`` reads them as tensors."""

import warnings

# `python -m data.prepare` runs data/prepare.py as __main__ after this package imported it for `prepare`;
# runpy warns about that, harmlessly (the module only defines functions), so the CLI stays quiet.
warnings.filterwarnings("ignore", message="'data.prepare' found in sys.modules", category=RuntimeWarning)

from data.cache import resolve_shards  # noqa: E402
from data.classes import CLASSES  # noqa: E402
from data.errors import DataError  # noqa: E402
from data.load import Cifar10, Split, load  # noqa: E402
from data.prepare import prepare  # noqa: E402

__all__ = ["CLASSES", "Cifar10", "DataError", "Split", "load", "prepare", "resolve_shards"]
