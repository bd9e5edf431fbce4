"""What a command's options are, described for programs that build their own front end (forms, wizards).

`command_options` gives the same options `omni COMMAND --help` lists, in the same groups, with the same help text
and defaults: the command's own, those of each spec its selector options choose (the tuner's, the algorithm's, a
reward's ...) and those of every installed spec of the kinds it includes (strategies, datasets, callbacks). A
plugin's options therefore show up wherever this is used as soon as the plugin is installed.

Light: no torch, no transformers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omni.cli.invocation import selected_specs
from omni.errors import OmniError
from omni.options import FieldInfo, fields_of, kebab, snake, suggest
from omni.registry import Registration, Registry, singular


@dataclass(frozen=True)
class OptionField:
    """One option: its YAML key (`name`), its flag, type, default and help, as `--help` shows them."""

    name: str  # snake_case: the YAML key
    flag: str  # --kebab-case (the option's name itself for positional options)
    type: str  # "str", "int", "float" or "bool": of each item when `is_list`
    is_list: bool
    optional: bool  # None (null in YAML) is a valid value
    required: bool  # no default: it must be given
    choices: tuple[Any, ...] | None  # the only values allowed, when the type is a Literal
    default: Any  # JSON-friendly: a list for list options, None when unset
    help: str
    section: str  # what the options dataclass that declares it is about (its docstring's first phrase)
    selects: str | None  # the kind of spec this option names (e.g. "tuners" for `tuner`), if it selects one


@dataclass(frozen=True)
class OptionGroup:
    """The options one command or spec contributes, titled as `--help` titles them."""

    title: str  # "sft options", "tuner 'lora' options (omni-plugin-lora)"
    kind: str  # "commands", or the kind of the spec ("tuners", "strategies" ...)
    name: str  # the command's or the spec's name
    distribution: str  # the distribution that registered it
    selected_by: str | None  # the option whose value chose this spec; None for the command and included kinds
    fields: tuple[OptionField, ...]


def command_options(
    command: str, values: Mapping[str, Any] | None = None, *, registry: Registry | None = None
) -> list[OptionGroup]:
    """The option groups `omni COMMAND` takes when its options hold `values` (YAML keys to values, as in a
    ``--config`` file; selector options such as ``tuner`` or ``algo`` decide which plugins' options join).

    A selector left unset uses its default (or, when the default's plugin is not installed, the spec the command
    would use instead). Raises `OmniError` for an unknown command or a selected name nobody registered."""
    if registry is None:
        from omni.plugins import get_registry

        registry = get_registry()
    registration = registry.find("commands", command)
    if registration is None:
        names = registry.names("commands")
        raise OmniError(f"unknown command {command!r}{suggest(command, names)}; commands: {', '.join(names)}")
    spec = registration.spec
    config = {snake(str(key)): value for key, value in (values or {}).items()}
    selections = selected_specs(spec, [], config, "the options given", registry)
    groups = []
    if spec.options is not None:
        groups.append(_group(f"{spec.name} options", registration, None))
    groups += [_group(_spec_title(reg), reg, option) for option, reg in selections.chosen if reg.spec.options]
    groups += [
        _group(_spec_title(reg), reg, None) for kind in spec.includes for reg in registry.all(kind) if reg.spec.options
    ]
    return groups


def _spec_title(reg: Registration) -> str:
    return f"{singular(reg.spec.kind)} {reg.spec.name!r} options ({reg.distribution.name})"


def _group(title: str, reg: Registration, selected_by: str | None) -> OptionGroup:
    spec = reg.spec
    selects = {selector.option: selector.kind for selector in spec.selects}
    infos = fields_of(spec.options)
    # An options class assembled from others (`omni sft`'s: model, data, template, launch, training) lists its
    # fields by the class declaring them, in the order it names its bases: what to load and read comes first.
    order = spec.options.__mro__
    infos.sort(key=lambda info: order.index(_declaring_class(spec.options, info.name)))
    fields = tuple(_field(spec.options, info, selects.get(info.name)) for info in infos)
    return OptionGroup(title, spec.kind, spec.name, reg.distribution.name, selected_by, fields)


def _field(options_cls: type, info: FieldInfo, selects: str | None) -> OptionField:
    declared = next(f for f in dataclasses.fields(options_cls) if f.name == info.name)
    if declared.default is not dataclasses.MISSING:
        default = declared.default
    elif declared.default_factory is not dataclasses.MISSING:
        default = declared.default_factory()
    else:
        default = None
    return OptionField(
        name=info.name,
        flag=info.name if info.positional else f"--{kebab(info.name)}",
        type=info.base.__name__,
        is_list=info.is_list,
        optional=info.optional,
        required=info.required,
        choices=info.choices,
        default=list(default) if isinstance(default, tuple | list) else default,
        help=info.help,
        section=_declaring_section(options_cls, info.name),
        selects=selects,
    )


def _declaring_class(options_cls: type, name: str) -> type:
    """The most basic dataclass among `options_cls`'s bases that declares field `name`."""
    return next(
        cls
        for cls in reversed(options_cls.__mro__)
        if dataclasses.is_dataclass(cls) and name in getattr(cls, "__annotations__", {})
    )


def _declaring_section(options_cls: type, name: str) -> str:
    """What the dataclass declaring `name` is about: its docstring's first phrase, else its name."""
    cls = _declaring_class(options_cls, name)
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass's generated "Name(field: type, ...)"
        return cls.__name__
    return re.split(r"; |: ", doc.splitlines()[0], maxsplit=1)[0].rstrip(".")
