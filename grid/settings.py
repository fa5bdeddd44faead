"""Settings declared once: a dataclass field made with `setting()` carries its flag, help and valid values, and
`add_flags` / `given` / `validate` turn those into argparse flags, the values a command line gave, and checks.

The typed configs (`TrainConfig`, `GridSpec`, `RunOptions`, `WandbSettings`) are the one source of their flags,
their validation and what grid.json records: a new setting is a new field, in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

_KEY = "cifar_grid"  # the metadata key under which a field's setting lives


@dataclasses.dataclass(frozen=True)
class Setting:
    help: str
    flag: str | None = None  # default: --field-name
    choices: Callable[[], Iterable[Any]] | tuple[Any, ...] | None = None  # a callable reads a registry late
    min: float | None = None
    max: float | None = None
    positive: bool = False  # > 0 (a float's `min` would have to invent a smallest value)
    unique: bool = False  # an axis is a set: a value twice is refused
    nonempty: bool = False
    id_tag: str | None = None  # the training id's suffix when not the default (the setting changes what is trained)

    def valid(self) -> tuple[Any, ...] | None:
        return None if self.choices is None else tuple(self.choices() if callable(self.choices) else self.choices)


def setting(default: Any = dataclasses.MISSING, *, help: str, **rules: Any) -> Any:
    """A dataclass field with its command-line flag and its valid values (see `Setting`)."""
    return dataclasses.field(default=default, metadata={_KEY: Setting(help=help, **rules)})


def of(f: dataclasses.Field) -> Setting | None:
    return f.metadata.get(_KEY)


def flag(cls: type, name: str) -> str:
    """The flag of field `name` of `cls`: what error messages name."""
    s = of(next(f for f in dataclasses.fields(cls) if f.name == name))
    return (s.flag if s and s.flag else None) or "--" + name.replace("_", "-")


# ---- argparse ---------------------------------------------------------------------------------------------


class UsageError(ValueError):
    """A command line argparse refuses; the CLIs print it as their one `error: ...` line and exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


def _list_of(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """Axis values, space- or comma-separated (`--epochs 10 20` or `--epochs 10,20`)."""

    def parse(text: str) -> list[Any]:
        return [kind(v) for v in text.split(",") if v]

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names the type in its errors
    return parse


def _scalar(hint: Any) -> tuple[Any, bool]:
    """(the base type of a field's hint, whether it is a tuple of them): int | None -> (int, False)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _scalar(args[0])
    if origin is tuple:
        return typing.get_args(hint)[0], True
    if origin is typing.Literal:
        return type(typing.get_args(hint)[0]), False
    return hint, False


def add_flags(
    parser: argparse._ActionsContainer, cls: type, names: Iterable[str] | None = None, *, required: Iterable[str] = ()
) -> None:
    """Adds a flag for each `setting()` field of `cls` (or those in `names`). A flag not given leaves no attribute
    (argparse.SUPPRESS): `given` then reports only what the command line said, so presets and resumed grids
    keep their values."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls) if of(f) is not None}
    for name in by_name if names is None else names:
        f, s = by_name[name], of(by_name[name])
        kind, many = _scalar(hints[name])
        hidden = f.default is dataclasses.MISSING or f.default is None or kind is bool or name in required
        shown = "" if hidden else f" (default {shown_value(f.default)})"
        choices = s.valid()
        if choices and many:  # a single value's choices argparse lists itself
            shown += f"; from {', '.join(map(str, choices))}"
        kw: dict[str, Any] = {"dest": name, "help": s.help + shown, "default": argparse.SUPPRESS}
        if kind is bool:
            kw["action"] = "store_true"
        elif many:
            kw.update(nargs="+", type=_list_of(kind), metavar=name.upper().rstrip("S") or name.upper())
        else:
            kw.update(type=kind, choices=list(choices) if choices else None)
        if name in required:
            kw["required"] = True
        parser.add_argument(flag(cls, name), **kw)


def shown_value(value: Any) -> str:
    """A setting's value as a command line gives it: an axis space-separated."""
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` the command line gave (see `add_flags`), axes flattened to tuples."""
    out = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name) and of(f) is not None:
            value = getattr(args, f.name)
            if isinstance(value, list):  # nargs="+" of comma lists: [[10, 20], [30]] -> (10, 20, 30)
                value = tuple(v for group in value for v in (group if isinstance(group, list) else [group]))
            out[f.name] = value
    return out


# ---- validation -------------------------------------------------------------------------------------------


def validate(obj: Any, error: type[Exception] = ValueError) -> None:
    """Checks every `setting()` field of a dataclass instance against its rules; raises `error` naming the flag."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        s = of(f)
        if s is None:
            continue
        value, name = getattr(obj, f.name), flag(type(obj), f.name)
        kind, many = _scalar(hints[f.name])
        values = tuple(value) if many else (value,)
        if many and s.nonempty and not values:
            raise error(f"{name}: give at least one value")
        if many and s.unique:
            twice = sorted({v for v in values if values.count(v) > 1}, key=str)
            if twice:
                raise error(f"{name}: {', '.join(map(repr, twice))} given twice (a grid's axis is a set)")
        for v in values:
            _check(v, kind, s, name, error)


def _check(value: Any, kind: Any, s: Setting, name: str, error: type[Exception]) -> None:
    if value is None:
        return
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise error(f"{name}: {value!r} is not a number")
    if kind is int and not isinstance(value, int):
        raise error(f"{name}: {value!r} is not a whole number")
    if kind is float and not math.isfinite(value):
        raise error(f"{name}: must be a finite number, not {value!r}")
    choices = s.valid()
    if choices is not None and value not in choices:
        raise error(f"{name}: unknown {value!r}; choose from {', '.join(map(str, choices))}")
    if s.min is not None and not value >= s.min:
        raise error(f"{name}: must be at least {s.min:g}, not {value!r}")
    if s.positive and not value > 0:
        raise error(f"{name}: must be positive, not {value!r}")
    if s.max is not None and not value <= s.max:
        raise error(f"{name}: must be at most {s.max:g}, not {value!r}")
