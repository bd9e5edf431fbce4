"""`omni init`: ask for a task, a model, data, a tuner and a few settings; write them as a YAML config.

Every choice offered comes from the registry (the installed plugins), and every default and help line from the
command's options (`omni.api.command_options`), so the wizard never offers what `omni sft` would refuse.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from omni.api import EMBEDDED_MODEL, OmniError, OptionField, Registry, command_options

TASKS = ("sft", "pt", "rlhf")
# The settings asked for after the tuner, when the command has them; the rest keep their defaults.
SETTINGS = ("num_train_epochs", "max_steps", "learning_rate", "max_length", "per_device_train_batch_size", "output_dir")


def ask(question: str, default: str = "") -> str:
    """One answer from the terminal; Enter takes `default`."""
    suffix = f" [{default}]" if default else ""
    try:
        answer = input(f"{question}{suffix}: ").strip()
    except EOFError:
        raise OmniError("omni init: the input ended before the wizard finished") from None
    return answer or default


def choose(question: str, options: list[tuple[str, str]], default: str) -> str:
    """One of `options` (name, description), by number or name."""
    print(f"\n{question}")
    for number, (name, description) in enumerate(options, 1):
        print(f"  {number}) {name:<22} {description}")
    names = [name for name, _ in options]
    while True:
        answer = ask("choose a number or a name", default)
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        if answer in names:
            return answer
        print(f"  not one of the choices: {answer!r}")


def confirm(question: str, default: bool) -> bool:
    while True:
        answer = ask(f"{question} (y/n)", "y" if default else "n").lower()
        if answer in ("y", "yes", "n", "no"):
            return answer.startswith("y")
        print("  answer y or n")


def ask_field(field: OptionField) -> Any:
    """A value for one option, converted to its type; asked again until it converts."""
    print(f"  {field.flag}: {field.help}")
    default = (
        "" if field.default is None else ", ".join(map(str, field.default)) if field.is_list else str(field.default)
    )
    while True:
        answer = ask(f"  {field.name}", default)
        try:
            return _convert(field, answer)
        except ValueError:
            print(f"  {field.name} must be {'a list of ' if field.is_list else ''}{field.type}, got {answer!r}")


def _convert(field: OptionField, text: str) -> Any:
    if field.is_list:
        return [_scalar(field, part.strip()) for part in text.split(",") if part.strip()]
    if text == "" and (field.optional or field.default is None):
        return None
    return _scalar(field, text)


def _scalar(field: OptionField, text: str) -> Any:
    if field.type == "bool":
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "yes", "1")
    value = {"int": int, "float": float}.get(field.type, str)(text)
    if field.choices and value not in field.choices:
        raise ValueError(text)
    return value


def _fields(command: str, values: dict[str, Any], registry: Registry) -> dict[str, OptionField]:
    return {f.name: f for group in command_options(command, values, registry=registry) for f in group.fields}


def ask_model(registry: Registry) -> str:
    families = ", ".join(registry.names("models"))
    print(f"\nModel: a local checkpoint folder or a hub id (installed families: {families})")
    while True:
        model = ask("model", EMBEDDED_MODEL)
        if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
            print(f"  no such folder: {model}")
            continue
        return model


def ask_data(registry: Registry) -> list[str]:
    named = "; ".join(f"{reg.spec.name} ({reg.spec.description})" for reg in registry.all("datasets"))
    print(
        f"\nData: files in the messages format (.jsonl, .json, .csv, .parquet), comma-separated, or a dataset name: {named}"
    )
    while True:
        answer = ask("dataset")
        items = [item.strip() for item in answer.split(",") if item.strip()]
        missing = [
            item for item in items
            if Path(item.split("#")[0]).suffix and not Path(item.split("#")[0]).expanduser().exists()
        ]  # fmt: skip
        if not items:
            print("  a dataset is needed")
        elif missing:
            print(f"  no such file: {missing[0]}")
        else:
            return items


def wizard(registry: Registry) -> tuple[str, dict[str, Any]]:
    """Ask everything; returns the command and the config's values."""
    tasks = [
        (name, registry.get("commands", name).spec.description) for name in TASKS if registry.find("commands", name)
    ]
    command = choose("Task", tasks, "sft")
    values: dict[str, Any] = {}
    if command == "rlhf":
        algorithms = [(r.spec.name, r.spec.description) for r in registry.all("algorithms") if r.spec.command == "rlhf"]
        if not algorithms:
            raise OmniError("omni init: no preference or RL algorithm is installed: pip install omni-plugin-dpo")
        values["algo"] = choose("Algorithm", algorithms, _first_default(algorithms, "dpo"))
    values["model"] = ask_model(registry)
    values["dataset"] = ask_data(registry)
    algorithm = values.get("algo", command)
    tuners = [
        (r.spec.name, r.spec.description)
        for r in registry.all("tuners")
        if not r.spec.algorithms or algorithm in r.spec.algorithms
    ]
    values["tuner"] = choose("Tuner", tuners, _first_default(tuners, "lora"))
    fields = _fields(command, values, registry)
    print("\nSettings (Enter keeps the default)")
    for name in SETTINGS:
        if name in fields:
            values[name] = ask_field(fields[name])
    tuner_fields = [
        f
        for group in command_options(command, values, registry=registry)
        if group.selected_by == "tuner"
        for f in group.fields
    ]
    if tuner_fields and confirm(f"\nSet the {values['tuner']} tuner's options too?", False):
        for field in tuner_fields:
            values[field.name] = ask_field(field)
    return command, {key: value for key, value in values.items() if value is not None}


def _first_default(options: list[tuple[str, str]], preferred: str) -> str:
    names = [name for name, _ in options]
    return preferred if preferred in names else names[0]


def run(invocation) -> int:  # noqa: ANN001 - omni's Invocation
    registry = invocation.registry
    command, values = wizard(registry)
    path = Path(ask("\nWrite the config to", invocation.options.output))
    if path.exists() and not confirm(f"{path} exists; replace it?", False):
        raise OmniError(f"omni init: {path} was left as it was")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8")
    line = shlex.join(["omni", command, "--config", str(path)])
    print(f"\nwrote {path}\nrun it with:\n  {line}")
    if not confirm("Start it now?", False):
        return 0
    return subprocess.call([sys.executable, "-m", "omni", command, "--config", str(path)])
