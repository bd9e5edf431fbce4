"""`omni new-plugin KIND NAME`: write a complete plugin distribution that installs, registers and tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from omni import PLUGIN_API_VERSION, __version__
from omni.errors import OmniError
from omni.scaffold import SCAFFOLDED_KINDS


@dataclass(frozen=True)
class _KindText:
    """What a kind's README says about using it, and the libraries its plugin needs beyond omni-core."""

    usage: str
    dependencies: tuple[str, ...] = ()
    has_options: bool = True


_KINDS: dict[str, _KindText] = {
    "model": _KindText(
        "A checkpoint whose config.json lists `${cls}ForCausalLM` in `architectures` (or a hub id matching\n"
        "`your-org/${name}-*`) is loaded by this plugin's loader:\n\n"
        '    omni infer --model path/to/checkpoint --query "Hi"\n'
        "    omni sft --model path/to/checkpoint --dataset train.jsonl",
        has_options=False,
    ),
    "dataset": _KindText(
        "    omni sft --dataset ${name} --${dashed}-max-number 20 --max-steps 10\n\n"
        "`--${dashed}-max-number` is a flag of `omni sft`, `omni pt` and `omni rlhf` (see their `--help`)\n"
        "and a `--config` YAML key (`${module}_max_number: 20`)."
    ),
    "template": _KindText(
        "    omni template render --model path/to/checkpoint --template ${name} --dataset train.jsonl\n"
        "    omni sft --template ${name} --dataset train.jsonl\n\n"
        'A model plugin makes it its family\'s default with `ModelSpec(template="${name}")`.',
        has_options=False,
    ),
    "tuner": _KindText("    omni sft --tuner ${name} --${dashed}-patterns norm bias --dataset train.jsonl"),
    "reward": _KindText(
        "    omni rlhf --algo grpo --reward-funcs ${name} --${dashed}-target-words 20 --dataset prompts.jsonl\n\n"
        "(`--algo grpo` comes from omni-plugin-grpo.)"
    ),
    "algorithm": _KindText(
        "    omni rlhf --algo ${name} --${dashed}-label-smoothing 0.1 --dataset train.jsonl --max-steps 10"
    ),
    "engine": _KindText('    omni infer --infer-backend ${name} --model path/to/checkpoint --query "Hi"'),
    "quantizer": _KindText(
        "    omni sft --quant-method ${name} --quant-bits 8 --model path/to/checkpoint --dataset train.jsonl",
        dependencies=("bitsandbytes>=0.50", "peft>=0.21"),
    ),
    "encoder": _KindText(
        "An encoder turns one item of a row's `images` into what a model's processor takes; a model plugin's\n"
        'template loads its images with `registry.get("encoders", "${name}").spec.load()`.',
        has_options=False,
    ),
    "strategy": _KindText(
        "    omni sft --${dashed}-bucket-mb 25 --nproc-per-node 2 --dataset train.jsonl\n\n"
        "`--${dashed}-bucket-mb` is a flag of `omni sft`, `omni pt` and `omni rlhf` wherever this plugin is installed;\n"
        "setting it turns the strategy on."
    ),
    "callback": _KindText(
        "    omni sft --${dashed}-stop-below 0.5 --dataset train.jsonl\n\n"
        "`--${dashed}-stop-below` is a flag of `omni sft`, `omni pt` and `omni rlhf` wherever this plugin is installed;\n"
        "setting it turns the callback on."
    ),
    "command": _KindText("    omni ${name} --kind rewards"),
}


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
    text = _KINDS[kind]
    values: dict[str, Any] = {
        "name": name,
        "module": module,
        "dashed": name,
        "cls": "".join(part.capitalize() for part in name.split("-")),
        "kind": kind,
        "kinds": "strategies" if kind == "strategy" else f"{kind}s",
        "api": PLUGIN_API_VERSION,
        "core_version": __version__,
        "core_next_major": f"{major + 1}",
        "description": f"An omni {kind} plugin: {name}",
        "dependencies": "".join(f', "{d}"' for d in text.dependencies),
        "with_options": " with its options" if text.has_options else "",
    }
    values["usage"] = Template(text.usage).substitute(values)
    package = root / "src" / f"omni_plugin_{module}"
    outputs = {
        root / "pyproject.toml": _read("common", "pyproject.toml.tmpl"),
        root / "README.md": _read("common", "README.md.tmpl"),
        package / "__init__.py": _read(kind, "entry.py.tmpl"),
        package / "impl.py": _read(kind, "impl.py.tmpl"),
        root / "tests" / f"test_{module}.py": _read(kind, "test.py.tmpl"),
    }
    for path, template in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return root


def run(invocation: Any) -> int:
    opts = invocation.options
    root = scaffold(opts.kind, opts.name, Path(opts.output_dir))
    print(f"created {root}")
    print(f"next: pip install -e {root} && omni plugins && pytest {root / 'tests'}")
    return 0
