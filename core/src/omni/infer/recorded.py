"""What an adapter's training run recorded, used as defaults when the adapter is loaded again.

`omni sft` writes args.json next to its outputs (one level up from `checkpoint-N` folders) with the
resolved base `model`, its `model_type`, the `model_head` it trained (a reward model's score head), and the
`template` and `system` prompt it encoded conversations with. Inference and export reuse them where the user gives nothing, so an adapter answers in the format
it was trained on. Adapters trained elsewhere still name their base in PEFT's adapter_config.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar, get_args

from omni.errors import OmniError
from omni.models.options import ModelHead, ModelOptions

ARGS_FILE = "args.json"
Options = TypeVar("Options", bound=ModelOptions)


def with_training_defaults(options: Options, adapter_dir: Path) -> Options:
    """`options` with the adapter's recorded base model (and model type), template and system prompt filled in.

    Only fields the user left empty change; the model type is taken only together with the model.
    Raises `OmniError` when no base model is given or recorded.
    """
    recorded = _training_args(adapter_dir)
    changes: dict[str, Any] = {}
    if not options.model:
        changes["model"] = _recorded_base_model(adapter_dir, recorded)
        changes["model_type"] = options.model_type or recorded.get("model_type")
    fields = {f.name for f in dataclasses.fields(options)}
    for name in ("template", "system"):  # only commands that encode conversations have these flags
        if name in fields and getattr(options, name) is None and recorded.get(name) is not None:
            changes[name] = recorded[name]
    return dataclasses.replace(options, **changes)


def recorded_model_head(adapter_dir: Path) -> ModelHead:
    """The head the adapter was trained on: args.json's `model_head`, else ``sequence_classification`` for a peft
    adapter of a classifier (adapter_config.json's ``task_type`` SEQ_CLS), else ``causal_lm``."""
    head = _training_args(adapter_dir).get("model_head")
    if head in get_args(ModelHead):
        return head
    task = _read_json(adapter_dir / "adapter_config.json").get("task_type")
    return "sequence_classification" if task == "SEQ_CLS" else "causal_lm"


def recorded_adapter_name(adapter_dir: Path) -> str | None:
    """The name the adapter in `adapter_dir` was trained under (`omni sft --adapter-name`), if one was given."""
    name = _training_args(adapter_dir).get("adapter_name")
    return name if isinstance(name, str) and name else None


def _training_args(adapter_dir: Path) -> dict[str, Any]:
    for args_file in (adapter_dir / ARGS_FILE, adapter_dir.parent / ARGS_FILE):
        data = _read_json(args_file)
        if data:
            return data
    return {}


def _recorded_base_model(adapter_dir: Path, recorded: dict[str, Any]) -> str:
    model = recorded.get("model") or _read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path")
    if not model:
        raise OmniError(
            f"cannot tell which base model the adapter in {adapter_dir} belongs to (no args.json `model`, no "
            "adapter_config.json `base_model_name_or_path`); pass it with --model"
        )
    return str(model)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
