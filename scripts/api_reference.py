"""Write docs/api.md, the reference of `omni.api`, from its docstrings (or with --check, say whether it is current).

    .venv/bin/python scripts/api_reference.py          # rewrite docs/api.md
    .venv/bin/python scripts/api_reference.py --check  # exit 1 when docs/api.md differs from the docstrings

Each exported name gets its signature and docstring; a class also lists its public methods and properties
(those it defines or overrides, not what it inherits from outside omni). The order is `omni.api.__all__`'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from generated_doc import write_or_check

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"


def _stable(text: str) -> str:
    """`text` without memory addresses, which change from run to run (sentinel defaults, context variables)."""
    return re.sub(r" (?:object )?at 0x[0-9a-f]+>", ">", text)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _signature(obj: Any) -> str:
    try:
        return _stable(str(inspect.signature(obj)))
    except (TypeError, ValueError):  # builtins and some C-implemented callables have none
        return "(...)"


def _members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties `cls` or an omni base defines, in definition order."""
    seen: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if not base.__module__.startswith("omni"):
            continue
        for name, value in vars(base).items():
            if name.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property | classmethod)):
                continue
            seen[name] = value
    return list(seen.items())


def _class_section(name: str, cls: type) -> list[str]:
    lines = [f"### `{name}`", ""]
    if dataclasses.is_dataclass(cls):
        lines += [f"`class {name}{_signature(cls)}`", ""]
    else:
        bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not object)
        lines += [f"`class {name}{f'({bases})' if bases else ''}`", ""]
    if _doc(cls):
        lines += [_doc(cls), ""]
    for member, value in _members(cls):
        if isinstance(value, property):
            lines.append(f"- `{member}` (property){': ' + _doc(value).splitlines()[0] if _doc(value) else ''}")
            continue
        function = value.__func__ if isinstance(value, classmethod) else value
        summary = _doc(function).split("\n\n")[0].replace("\n", " ")
        lines.append(f"- `{member}{_signature(function)}`{': ' + summary if summary else ''}")
    if lines[-1] != "":
        lines.append("")
    return lines


def reference() -> str:
    """The text of docs/api.md."""
    import omni.api as api

    lines = [
        "# `omni.api` reference",
        "",
        "Generated from the docstrings by `scripts/api_reference.py`; do not edit (a test checks it is current).",
        f"Plugin API version {api.API_VERSION}.",
        "",
        _doc(api),
        "",
        "## Names",
        "",
    ]
    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isclass(obj):
            lines += _class_section(name, obj)
        elif callable(obj):
            lines += [f"### `{name}`", "", f"`{name}{_signature(obj)}`", ""]
            lines += [_doc(obj), ""] if _doc(obj) else []
        else:
            lines += [f"### `{name}`", "", f"`{name} = {_stable(repr(obj))}`", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(API_DOC, reference(), "scripts/api_reference.py", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
