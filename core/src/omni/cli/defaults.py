"""Defaults that name a plugin's spec work with what is installed.

`omni sft` selects the tuner `lora` unless told otherwise, and `omni rlhf` the algorithm `dpo`; both belong to
plugins a user may not have installed. When the user named nothing and the default's plugin is missing, the run
uses an installed spec instead and says in one line how to get the default. A name the user gave is never
replaced: that stays an error naming the plugin to install.
"""

from __future__ import annotations

import sys

from omni.registry import Registration, Registry, provider_of, singular


def installed_instead(registry: Registry, kind: str, command: str) -> Registration | None:
    """The spec of `kind` to use when the default is not installed: the first one registered that `command`
    runs (built-in plugins register first, so a built-in one when there is one: `full` for tuners), or None."""
    for name, registration in registry.entries[kind].items():
        if (kind, name) in registry.conflicts:
            continue
        if getattr(registration.spec, "command", command) == command:  # an algorithm names its command
            return registration
    return None


def say_default_replaced(kind: str, default: str, used: str) -> None:
    """One line on stderr: the default `default` is not installed, `used` runs instead, how to get the default."""
    provider = provider_of(kind, default)
    get_it = f"pip install {provider}" if provider else f"install the plugin that registers {default!r}"
    print(
        f"omni: note: the default {singular(kind)} {default!r} is not installed, so this run uses {used!r}; "
        f"for {default}: {get_it}",
        file=sys.stderr,
    )
