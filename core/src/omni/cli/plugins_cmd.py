"""`omni plugins`: what is installed, what each plugin registered, and what failed to load.

It always runs, even with a broken plugin installed and under ``OMNI_STRICT_PLUGINS=1`` (the main entry point
loads plugins leniently for it); in strict mode it lists everything, then exits with status 2 when any plugin
failed or two plugins clash.
"""

from __future__ import annotations

import json

from omni.cli.invocation import Invocation, print_error
from omni.plugins import get_host, strict_requested


def run(invocation: Invocation) -> int:
    host = get_host()
    if invocation.options.json:
        print(json.dumps([p.as_dict() for p in host.plugins], indent=2))
    else:
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
    problems = len(host.errors) + len(host.registry.conflicts)
    if problems and strict_requested():
        print_error(f"OMNI_STRICT_PLUGINS is set and {problems} plugin problem(s) are listed above")
        return 2
    return 0
