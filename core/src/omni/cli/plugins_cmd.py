"""`omni plugins`: what is installed and what each plugin registered."""

from __future__ import annotations

import json

from omni.cli.invocation import Invocation
from omni.plugins import get_host


def run(invocation: Invocation) -> int:
    host = get_host()
    if invocation.options.json:
        print(json.dumps([p.as_dict() for p in host.plugins], indent=2))
        return 0
    for p in host.plugins:
        origin = "built-in" if p.builtin else f"{p.distribution.name} {p.distribution.version}"
        print(f"{p.name}  ({origin})")
        if p.error:
            print(f"  ERROR: {p.error}")
            continue
        print(f"  hooks: {', '.join(p.hooks) or 'none'}")
        for kind, names in sorted(p.registered.items()):
            print(f"  {kind}: {', '.join(names)}")
    for (kind, name), clash in sorted(host.registry.conflicts.items()):
        dists = ", ".join(r.distribution.name for r in clash)
        print(f"CONFLICT: {kind} {name!r} registered by {dists}")
    return 0
