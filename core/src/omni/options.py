"""Options dataclasses become CLI flags and ``--config`` YAML keys.

A field ``lora_rank`` is the flag ``--lora-rank`` (``--lora_rank`` is accepted too) and the YAML key
``lora_rank`` or ``lora-rank``. Extra spellings (ms-swift's names, say) go in the field's ``aliases``.
Precedence: the dataclass default, then the config file, then flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from omni.errors import OmniError

_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    aliases: Sequence[str] = (),
    positional: bool = False,
    metavar: str | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """A dataclass field that documents itself as a flag: ``lora_rank: int = option(8, help="...")``."""
    metadata = {"help": help, "aliases": tuple(aliases), "positional": positional, "metavar": metavar}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def snake(name: str) -> str:
    return name.strip().lstrip("-").replace("-", "_")


def kebab(name: str) -> str:
    return snake(name).replace("_", "-")


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One option field with its parsed type."""

    name: str
    base: type
    is_list: bool
    optional: bool
    choices: tuple[Any, ...] | None
    help: str
    aliases: tuple[str, ...]
    positional: bool
    metavar: str | None
    required: bool

    @property
    def spellings(self) -> list[str]:
        """Every accepted key for this field, snake_case."""
        return [self.name, *(snake(a) for a in self.aliases)]

    def convert(self, value: Any, where: str) -> Any:
        """Coerce a config or flag value to this field's type, or raise an error naming `where`."""
        if value is None:
            if self.optional or not self.required:
                return None
        if self.is_list:
            items = value if isinstance(value, list | tuple) else [value]
            return [self._scalar(v, where) for v in items]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return self._scalar(value, where)

    def _scalar(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and self.optional and value.lower() in ("none", "null"):
            return None
        try:
            if self.base is bool:
                converted = parse_bool(value)
            elif self.base in (int, float) and isinstance(value, str | int | float) and not isinstance(value, bool):
                converted = self.base(value)
                if self.base is int and isinstance(value, float) and value != int(value):
                    raise ValueError(value)
            elif self.base is str and isinstance(value, str | int | float):
                converted = str(value)
            elif isinstance(value, self.base):
                converted = value
            else:
                raise ValueError(value)
        except (TypeError, ValueError):
            raise OmniError(f"{where}: {self.name} must be {self.base.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise OmniError(f"{where}: {self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return converted


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n"):
        return False
    raise ValueError(value)


def _unwrap(tp: Any) -> tuple[type, bool, bool, tuple[Any, ...] | None]:
    """(base type, is_list, optional, choices) for a field annotation."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
        origin = typing.get_origin(tp)
    is_list = origin in (list, tuple, Sequence)
    if is_list:
        tp = typing.get_args(tp)[0] if typing.get_args(tp) else str
        origin = typing.get_origin(tp)
    choices = None
    if origin is Literal:
        choices = typing.get_args(tp)
        tp = type(choices[0])
    return tp, is_list, optional, choices


def fields_of(options_cls: type) -> list[FieldInfo]:
    """The option fields of a dataclass, with their types resolved."""
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        base, is_list, optional, choices = _unwrap(hints[f.name])
        required = f.default is _MISSING and f.default_factory is _MISSING
        out.append(
            FieldInfo(
                name=f.name,
                base=base,
                is_list=is_list,
                optional=optional,
                choices=choices,
                help=f.metadata.get("help", ""),
                aliases=tuple(f.metadata.get("aliases", ())),
                positional=bool(f.metadata.get("positional", False)),
                metavar=f.metadata.get("metavar"),
                required=required,
            )
        )
    return out


def _default_text(options_cls: type, name: str) -> str:
    f = next(f for f in dataclasses.fields(options_cls) if f.name == name)
    if f.default is not _MISSING:
        return "" if is_blank_default(f.default) else f" (default: {f.default})"
    if f.default_factory is not _MISSING:
        value = f.default_factory()
        return f" (default: {' '.join(map(str, value))})" if value else ""
    return ""


def is_blank_default(value: Any) -> bool:
    """Defaults not worth printing; by identity, so 0 and 0.0 still show."""
    return value is None or value is False or value == ""


def add_arguments(parser: argparse.ArgumentParser, options_cls: type, *, title: str | None = None) -> list[FieldInfo]:
    """Add one argument per field to `parser` (in a group titled `title`); values default to absent."""
    target: Any = parser.add_argument_group(title) if title else parser
    infos = fields_of(options_cls)
    for info in infos:
        help_text = info.help + _default_text(options_cls, info.name)
        if info.positional:
            if info.choices is not None:
                help_text += f" (one of: {', '.join(map(str, info.choices))})"
            nargs = ("*" if not info.required else "+") if info.is_list else (None if info.required else "?")
            target.add_argument(info.name, nargs=nargs, help=help_text, default=argparse.SUPPRESS, metavar=info.metavar)
            continue
        kwargs: dict[str, Any] = {"dest": info.name, "default": argparse.SUPPRESS}
        if info.base is bool and not info.is_list:
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        elif info.is_list:
            # Repeating a list flag adds to it (`--image a.png --image b.png`), as one flag with several values does.
            kwargs.update(nargs="+", action="extend", metavar=info.metavar or info.name.upper())
        else:
            kwargs.update(metavar=info.metavar or info.name.upper())
        if info.choices is not None:
            kwargs["metavar"] = "{" + ",".join(map(str, info.choices)) + "}"
        visible = [f"--{kebab(info.name)}"] + [f"--{kebab(a)}" for a in info.aliases]
        hidden = sorted({f"--{snake(s)}" for s in (info.name, *info.aliases)} - set(visible))
        target.add_argument(*visible, help=help_text, **kwargs)
        if hidden:
            target.add_argument(*hidden, help=argparse.SUPPRESS, **kwargs)
    return infos


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict keyed by snake_case names."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OmniError(f"config file {p} does not exist") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise OmniError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OmniError(f"{p}: a config file must be a mapping of option names to values")
    return {snake(str(k)): v for k, v in data.items()}


def build_options(
    options_cls: type, infos: Iterable[FieldInfo], flags: dict[str, Any], config: dict[str, Any], config_name: str
) -> Any:
    """An options instance from config values overridden by flag values (both keyed by snake name)."""
    values: dict[str, Any] = {}
    for info in infos:
        for key in info.spellings:
            if key in config:
                values[info.name] = info.convert(config[key], config_name)
        if info.name in flags:
            values[info.name] = info.convert(flags[info.name], f"--{kebab(info.name)}")
        if info.required and info.name not in values:
            raise OmniError(f"missing required option --{kebab(info.name)}")
    return options_cls(**values)


def unknown_keys(config: dict[str, Any], known: set[str]) -> list[str]:
    return [k for k in config if k not in known]


def suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
