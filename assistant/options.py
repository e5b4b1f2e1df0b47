"""Command-line options generated from the fields of a stage's config dataclass.

One rule turns a field into an option, so that a default is written once (in the dataclass)
and checked once (in its `__post_init__`):

    field `max_sessions: int = 16`        ->  --max-sessions N     (type int, default 16)
    field `partials: bool = True`         ->  --no-partials        (store_false)
    field `widen_beam: bool = False`      ->  --widen-beam         (store_true)
    field `max_batch: int | None = None`  ->  --max-batch N        (type int, default None)
    field `allowed_origins: tuple[str, ...]` -> --allowed-origins [X ...]

`Flag` says where a field departs from the rule (another option name, choices, a value that is
spelled differently on the command line). `ConfigOptions.build(args)` makes the dataclass from
the parsed options and turns its ValueError into a UserError naming the options, which the CLI
prints as `assistant CMD: error: ...` with exit status 2.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import UserError


@dataclass(frozen=True)
class Flag:
    """How one field appears on the command line where the generic rule does not fit.

    option: the option string (default --field-name; --no-field-name for a bool that is True).
    to_arg / from_arg: the field's default as the option shows it, and the option's value back
        to the field's (e.g. adapter None <-> "none").
    type: the option's type when from_arg takes something else than the field's type.
    """

    help: str = ""
    option: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    to_arg: Callable[[Any], Any] | None = None
    from_arg: Callable[[Any], Any] | None = None


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"field {field.name} has no default: a CLI option needs one")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed) of `X | None`, `Optional[X]`, `X`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        # str | Path | None and the like: the option is a path
        return (Path if Path in args else args[0]), True
    return annotation, False


def _hints(cls: type, names: Iterable[str]) -> dict[str, Any]:
    """The evaluated annotations of `names` only (typing.get_type_hints evaluates every field,
    and fails on one whose type is imported for type checking alone)."""
    scope = {**vars(builtins), **vars(sys.modules[cls.__module__])}
    out = {}
    for name in names:
        annotation = next(
            k.__annotations__[name]
            for k in cls.__mro__
            if name in k.__dict__.get("__annotations__", {})
        )
        out[name] = eval(annotation, scope) if isinstance(annotation, str) else annotation  # noqa: S307
    return out


class ConfigOptions:
    """The options of some fields of `cls`, added to `parser` (in a group titled `title`)."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        cls: type,
        flags: Mapping[str, Flag | str] | None = None,
        *,
        only: Iterable[str] | None = None,
        skip: Iterable[str] = (),
        title: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """flags: field -> Flag or help text. only: these fields (in this order), else every
        field but `skip`. defaults: another default for some fields (a value of the field's
        type), where this command's use differs from the dataclass's."""
        self.cls = cls
        fields = {f.name: f for f in dataclasses.fields(cls)}
        names = list(only) if only is not None else [n for n in fields if n not in set(skip)]
        unknown = [n for n in [*names, *(flags or {}), *(defaults or {})] if n not in fields]
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
        hints = _hints(cls, names)
        self.flags: dict[str, Flag] = {}
        self.options: dict[str, str] = {}  # field -> option string
        group = parser.add_argument_group(title) if title else parser
        for name in names:
            flag = (flags or {}).get(name, Flag())
            flag = Flag(help=flag) if isinstance(flag, str) else flag
            default = (defaults or {}).get(name, _default(fields[name]))
            self.flags[name] = flag
            self.options[name] = self._add(group, name, hints[name], default, flag)

    def _add(self, group, name: str, annotation: Any, default: Any, flag: Flag) -> str:
        kebab = name.replace("_", "-")
        help_text = flag.help or f"{self.cls.__name__}.{name}"
        kind, optional = _base_type(annotation)
        if kind is bool and not optional and flag.to_arg is None:
            option = flag.option or (f"--no-{kebab}" if default else f"--{kebab}")
            action = "store_false" if default else "store_true"
            group.add_argument(option, dest=name, action=action, default=default, help=help_text)
            return option
        option = flag.option or f"--{kebab}"
        value = flag.to_arg(default) if flag.to_arg else default
        kwargs: dict[str, Any] = {"dest": name, "default": value}
        if typing.get_origin(kind) is tuple:
            kwargs["nargs"] = "*"
            kwargs["type"] = flag.type or typing.get_args(kind)[0]
        elif flag.choices is None:
            kwargs["type"] = flag.type or (kind if kind in (int, float, Path) else str)
        if flag.choices is not None:
            kwargs["choices"] = flag.choices
        if flag.metavar:
            kwargs["metavar"] = flag.metavar
        if "(default" not in help_text:
            help_text += " (default %(default)s)"
        group.add_argument(option, help=help_text, **kwargs)
        return option

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """field -> value from the parsed options."""
        out = {}
        for name, flag in self.flags.items():
            value = getattr(args, name)
            if flag.from_arg is not None:
                value = flag.from_arg(value)
            elif isinstance(value, list):
                value = tuple(value)
            out[name] = value
        return out

    def build(self, args: argparse.Namespace, **given: Any):
        """`cls(**options, **given)`; its ValueError becomes a UserError naming the options."""
        return build(self.cls, {**self.values(args), **given}, self.options)


def build(cls: type, values: Mapping[str, Any], options: Mapping[str, str] | None = None):
    """`cls(**values)`, with the ValueError of its `__post_init__` as a UserError in which the
    field names are the options they came from (max_sessions -> --max-sessions)."""
    try:
        return cls(**values)
    except ValueError as error:
        message = str(error)
        for name in sorted(options or {}, key=len, reverse=True):
            message = re.sub(rf"(?<![\w-]){re.escape(name)}\b", options[name], message)
        raise UserError(f"{message}; fix the option") from error
