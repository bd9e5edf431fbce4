"""`omni list KIND`: the registered specs of one kind, with their options."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.options import fields_of, is_blank_default, kebab
from omni.registry import KINDS, Spec, singular


def _kind(word: str) -> str:
    word = word.lower()
    for kind in KINDS:
        if word in (kind, singular(kind)):
            return kind
    raise OmniError(f"unknown kind {word!r}; kinds: {', '.join(KINDS)}")


def _options(spec: Spec) -> list[dict[str, Any]]:
    if spec.options is None:
        return []
    defaults = {f.name: f.default for f in dataclasses.fields(spec.options) if f.default is not dataclasses.MISSING}
    return [
        {
            "flag": f.name if f.positional else f"--{kebab(f.name)}",
            "type": ("list[" + f.base.__name__ + "]") if f.is_list else f.base.__name__,
            "default": defaults.get(f.name),
            "help": f.help,
        }
        for f in fields_of(spec.options)
    ]


def _extra_fields(spec: Spec) -> dict[str, Any]:
    """Kind-specific spec fields (architectures, modality, command ...), JSON-friendly."""
    base = {f.name for f in dataclasses.fields(Spec)}
    extra = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in base}
    return {k: _plain(v) for k, v in extra.items()}


def _plain(value: Any) -> Any:
    """`value` as JSON data: tuples as lists, dataclasses (a model's parts) as objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return list(value) if isinstance(value, tuple) else value


def run(invocation: Invocation) -> int:
    kind = _kind(invocation.options.kind)
    registry = invocation.registry
    # A name two plugins registered is listed under each of them, marked, rather than left out.
    regs = sorted([*registry.all(kind), *registry.clashing(kind)], key=lambda r: r.spec.name)
    rows = [
        {
            "name": r.spec.name,
            "clashes_with": [c.distribution.name for c in registry.clash_for(kind, r.spec.name) or [] if c is not r],
            "description": r.spec.description,
            "aliases": list(r.spec.aliases),
            "distribution": r.distribution.name,
            "version": r.distribution.version,
            "options": _options(r.spec),
            **_extra_fields(r.spec),
        }
        for r in regs
    ]
    if invocation.options.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"no {kind} registered")
    for row in rows:
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        print(f"{row['name']}{aliases}  [{row['distribution']}]")
        if row["clashes_with"]:
            others = ", ".join(row["clashes_with"])
            print(
                f"    !! CLASH: also registered by {others}; unusable until one is uninstalled or overrides the other"
            )
        print(f"    {row['description']}")
        for opt in row["options"]:
            default = "" if is_blank_default(opt["default"]) else f" (default: {opt['default']})"
            print(f"    {opt['flag']:<28} {opt['help']}{default}")
    return 0
