"""`omni new-plugin KIND NAME`: write a complete plugin distribution that installs, registers and tests."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

from omni import PLUGIN_API_VERSION, __version__
from omni.cli.invocation import Invocation
from omni.errors import OmniError

SCAFFOLDED_KINDS = ("command", "dataset", "model", "reward", "tuner")


def _read(kind: str, name: str) -> Template:
    return Template((files("omni") / "scaffold" / kind / name).read_text(encoding="utf-8"))


def scaffold(kind: str, name: str, parent: Path) -> Path:
    """Create `parent/omni-plugin-NAME` for a plugin of `kind`; returns its path."""
    if kind not in SCAFFOLDED_KINDS:
        raise OmniError(f"new-plugin can start a {', '.join(SCAFFOLDED_KINDS)} plugin, not a {kind!r} one")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise OmniError(f"plugin name {name!r} must be lower-case letters, digits and dashes, starting with a letter")
    root = parent / f"omni-plugin-{name}"
    if root.exists():
        raise OmniError(f"{root} already exists; choose another name or --output-dir")
    module = name.replace("-", "_")
    major = int(__version__.split(".")[0])
    values = {
        "name": name,
        "module": module,
        "dashed": name,
        "cls": "".join(part.capitalize() for part in name.split("-")),
        "kind": kind,
        "api": PLUGIN_API_VERSION,
        "core_version": __version__,
        "core_next_major": f"{major + 1}",
        "description": f"An omni {kind} plugin: {name}",
    }
    package = root / "src" / f"omni_plugin_{module}"
    outputs = {
        root / "pyproject.toml": _read("common", "pyproject.toml.tmpl"),
        root / "README.md": _read("common", "README.md.tmpl"),
        package / "__init__.py": _read(kind, "entry.py.tmpl"),
        package / "impl.py": _read(kind, "impl.py.tmpl") if kind != "model" else None,
        root / "tests" / f"test_{module}.py": _read(kind, "test.py.tmpl"),
    }
    for path, template in outputs.items():
        if template is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return root


def run(invocation: Invocation) -> int:
    opts = invocation.options
    root = scaffold(opts.kind, opts.name, Path(opts.output_dir))
    print(f"created {root}")
    print(f"next: pip install -e {root} && omni plugins && pytest {root / 'tests'}")
    return 0
