"""Parse one command's arguments: its own options, `--config`, and the options of the specs it selects."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

from omni.cli.defaults import installed_instead, say_default_replaced
from omni.errors import MissingCapabilityError, OmniError
from omni.options import FieldInfo, add_arguments, build_options, fields_of, kebab, load_config, snake, suggest
from omni.registry import (
    CommandSpec,
    Registration,
    Registry,
    Selected,
    collision_message,
    provider_of,
    selected_one,
    singular,
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as `OmniError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise OmniError(f"{self.prog}: {message}")


@dataclass
class Invocation:
    """Everything a command's `run` gets: its options, the specs it selected, and the registry."""

    command: CommandSpec
    options: Any
    registry: Registry
    selected: dict[str, list[Selected]] = field(default_factory=dict)
    debug: bool = False
    argv: list[str] = field(default_factory=list)  # the command's own arguments, as typed

    def selected_one(self, option: str) -> Selected | None:
        """The single spec selected by `option` (None when that option was left empty)."""
        return selected_one(self.selected, option)


def _selected_names(value: Any) -> list[str]:
    """The names a selector option holds: one, a list, or names separated by commas."""
    if value in (None, ""):
        return []
    values = value if isinstance(value, list | tuple) else [value]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def parse_invocation(spec: CommandSpec, argv: list[str], registry: Registry, *, debug: bool = False) -> Invocation:
    """Parse `argv` for command `spec`. `-h` prints the help (with selected plugins' options) and exits."""
    prog = f"omni {spec.name}"
    pre = _Parser(prog=prog, add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    config_name = known.config or ""
    config = load_config(known.config) if known.config else {}

    cmd_infos = fields_of(spec.options) if spec.options else []
    wants_help = any(a in ("-h", "--help") for a in argv)
    parser = _Parser(prog=prog, description=spec.description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="RUN.YAML", help="read options from a YAML file; flags override it")
    if spec.options:
        add_arguments(parser, spec.options, title=f"{spec.name} options")
    taken = {s for info in cmd_infos for s in info.spellings} | {"config"}
    groups: list[tuple[str, Registration, list[FieldInfo]]] = []
    selections = selected_specs(spec, argv, config, config_name, registry, lenient=wants_help)
    if selections.problems:
        parser.epilog = f"note: {selections.problems[-1]}"
    for option, reg in selections.chosen:
        groups.append((option, reg, _add_spec_options(parser, reg.spec.kind, reg, taken) if reg.spec.options else []))
    for default, reg in selections.replaced_defaults.values():
        say_default_replaced(reg.spec.kind, default, reg.spec.name)
    replaced_defaults = {option: reg for option, (_, reg) in selections.replaced_defaults.items()}
    for kind in spec.includes:  # every installed spec of these kinds brings its options (e.g. strategies)
        for reg in registry.all(kind):
            groups.append((kind, reg, _add_spec_options(parser, kind, reg, taken) if reg.spec.options else []))
    _refuse_uninstalled_switches(parser, argv, config, registry)

    unknown = sorted(set(config) - taken)
    if unknown:
        raise OmniError(f"{config_name}: unknown option {unknown[0]!r}{suggest(unknown[0], taken)} for {prog}")
    try:
        flags = vars(parser.parse_args(argv))
    except SystemExit as exit_:
        raise HelpShown(exit_.code if isinstance(exit_.code, int) else 0) from None
    flags.pop("config", None)
    flags.update({option: reg.spec.name for option, reg in replaced_defaults.items()})
    options = build_options(spec.options, cmd_infos, flags, config, config_name) if spec.options else None
    invocation = Invocation(spec, options, registry, debug=debug, argv=list(argv))
    for option, reg, infos in groups:
        opts = build_options(reg.spec.options, infos, flags, config, config_name) if reg.spec.options else None
        invocation.selected.setdefault(option, []).append(Selected(reg, opts))
    _refuse_clashing_names(invocation)
    return invocation


@dataclass
class Selections:
    """The specs a command's options select, in the order their options join the command's flags."""

    chosen: list[tuple[str, Registration]] = field(default_factory=list)  # (selecting option, spec)
    # option -> (its default, the spec used instead because the default is not installed)
    replaced_defaults: dict[str, tuple[str, Registration]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # names that could not be selected (with `lenient`)


def selected_specs(
    spec: CommandSpec,
    argv: list[str],
    config: dict[str, Any],
    config_name: str,
    registry: Registry,
    *,
    lenient: bool = False,
) -> Selections:
    """The specs selected by `spec`'s selector options (flag, else config, else default), then by theirs, to any
    depth. A name nobody registered raises, or with `lenient` is noted in `problems` and skipped."""
    selections = Selections()
    # (options class, its fields, selector): the command's selectors, then those of each spec they select.
    cmd_infos = fields_of(spec.options) if spec.options else []
    pending = [(spec.options, cmd_infos, selector) for selector in spec.selects]
    while pending:
        options_cls, infos, selector = pending.pop(0)
        info = next(i for i in infos if i.name == selector.option)
        seen = {reg.spec.name for option, reg in selections.chosen if option == selector.option}
        value, defaulted = _selector_value(options_cls, info, argv, config, config_name)
        for name in _selected_names(value):
            if selector.external and re.fullmatch(selector.external, name):
                continue  # not a registry name; the spec reading the option resolves it
            try:
                reg = registry.get(selector.kind, name)
            except OmniError as exc:
                fallback = None
                if defaulted and not info.is_list and isinstance(exc, MissingCapabilityError):
                    fallback = installed_instead(registry, selector.kind, spec.name)
                if fallback is not None:
                    selections.replaced_defaults[info.name] = (name, fallback)
                    reg = fallback
                elif lenient:
                    selections.problems.append(str(exc))
                    continue
                else:
                    raise
            if reg.spec.name in seen:  # named twice: its options are already in
                continue
            seen.add(reg.spec.name)
            selections.chosen.append((selector.option, reg))
            if reg.spec.options is not None:
                nested_infos = fields_of(reg.spec.options)
                pending.extend((reg.spec.options, nested_infos, nested) for nested in reg.spec.selects)
    return selections


def _add_spec_options(parser: Any, kind: str, reg: Registration, taken: set[str]) -> list[FieldInfo]:
    """Add a spec's options to the parser as their own group, and their spellings to `taken`; a spec whose
    option is spelled like one already there (the command's, or another plugin's) is refused by name."""
    dist = reg.distribution.name
    clash = [f.name for f in fields_of(reg.spec.options) if set(f.spellings) & taken]
    if clash:
        raise OmniError(f"{singular(kind)} {reg.spec.name!r} ({dist}) redefines option(s) {clash}")
    added = add_arguments(parser, reg.spec.options, title=f"{singular(kind)} {reg.spec.name!r} options ({dist})")
    taken |= {s for info in added for s in info.spellings}
    return added


def _refuse_clashing_names(invocation: Invocation) -> None:
    """A value naming something two plugins registered (a template, a dataset ...) stops the command now, before
    any model loads, rather than where the name is first looked up."""
    registry = invocation.registry
    if not registry.conflicts:
        return
    option_sets = [invocation.options, *(s.options for chosen in invocation.selected.values() for s in chosen)]
    for options in option_sets:
        for field_ in dataclasses.fields(options) if dataclasses.is_dataclass(options) else ():
            for value in _selected_names(getattr(options, field_.name)):
                name = value.split("#", 1)[0]  # `--dataset NAME#COUNT` samples COUNT rows of NAME
                for kind in {kind for kind, _ in registry.conflicts}:
                    clash = registry.clash_for(kind, name)
                    if clash:
                        message = collision_message(kind, clash[0].spec.name, clash)
                        raise OmniError(f"--{kebab(field_.name)} {value}: {message}")


def _refuse_uninstalled_switches(
    parser: argparse.ArgumentParser, argv: list[str], config: dict[str, Any], registry: Registry
) -> None:
    """A flag or config key that switches on a strategy or callback nobody installed (``--deepspeed``) names the
    plugin that provides it (from the plugin indexes)."""
    known = parser._option_string_actions  # argparse keeps no public map of its flags
    used = [snake(a.split("=", 1)[0]) for a in argv if a.startswith("--")] + list(config)
    for name in used:
        if f"--{kebab(name)}" not in known and f"--{name}" not in known:
            provider = provider_of("switches", name)
            if provider:
                raise MissingCapabilityError(f"--{kebab(name)} needs the {provider} plugin: pip install {provider}")


def _selector_value(
    options_cls: type, info: FieldInfo, argv: list[str], config: dict[str, Any], config_name: str
) -> tuple[Any, bool]:
    """The value of one selector option (flag, else config, else default), parsed on its own, and whether it is
    the default."""
    probe = _Parser(add_help=False)
    flags = [f"--{s}" for s in {*(kebab(x) for x in info.spellings), *info.spellings}]
    probe.add_argument(*flags, dest="value", nargs="+" if info.is_list else None, default=argparse.SUPPRESS)
    # The probe does not know the other flags, and argparse reads an unknown `--flag=value with spaces` as a
    # value (it would join a list selector's names): the probe sees such flags without their values.
    others = [a.split("=", 1)[0] if a.startswith("--") and a.split("=", 1)[0] not in flags else a for a in argv]
    found = vars(probe.parse_known_args(others)[0])
    if "value" in found:
        return info.convert(found["value"], f"--{kebab(info.name)}"), False
    for key in info.spellings:
        if key in config:
            return info.convert(config[key], config_name), False
    default = next(f for f in dataclasses.fields(options_cls) if f.name == info.name)
    if default.default_factory is not dataclasses.MISSING:
        return default.default_factory(), True
    return (None if default.default is dataclasses.MISSING else default.default), True


class HelpShown(Exception):
    """argparse printed help (or a usage line) and wants to exit with `code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def print_error(message: str) -> None:
    """Print a one-line error; a process of a multi-process run says its rank."""
    from omni.train.launch import current_processes  # light: no torch

    processes = current_processes()
    rank = f"[rank {processes.rank}] " if processes.world_size > 1 else ""
    sys.stderr.write(f"omni: error: {rank}{message}\n")  # one write: processes of a run share the terminal
