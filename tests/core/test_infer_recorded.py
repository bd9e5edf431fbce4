"""An adapter's recorded training settings fill the flags the user left empty."""

from __future__ import annotations

import json

import pytest
from omni.errors import OmniError
from omni.export.options import ExportOptions
from omni.infer.options import InferOptions
from omni.infer.recorded import with_training_defaults

RECORDED = {"model": "/models/base", "model_type": "smollm2", "template": "smollm2", "system": "Be brief."}


@pytest.fixture
def checkpoint(tmp_path):
    """run/checkpoint-5 holding a PEFT adapter, with the run's args.json one level up (as omni sft leaves it)."""
    folder = tmp_path / "run" / "checkpoint-5"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere"}))
    (folder.parent / "args.json").write_text(json.dumps(RECORDED))
    return folder


def test_recorded_settings_fill_empty_flags(checkpoint):
    options = with_training_defaults(InferOptions(), checkpoint)
    assert (options.model, options.model_type, options.template, options.system) == (
        "/models/base", "smollm2", "smollm2", "Be brief.",
    )  # fmt: skip


def test_flags_the_user_gave_win(checkpoint):
    options = with_training_defaults(InferOptions(model="/other", template="default"), checkpoint)
    assert (options.model, options.model_type, options.template, options.system) == (
        "/other",
        None,
        "default",
        "Be brief.",
    )  # fmt: skip  (the recorded model type belongs to the recorded model only)


def test_export_options_take_the_model_only(checkpoint):
    options = with_training_defaults(ExportOptions(), checkpoint)
    assert (options.model, options.model_type) == ("/models/base", "smollm2")


def test_peft_base_path_without_args_json(checkpoint):
    (checkpoint.parent / "args.json").unlink()
    assert with_training_defaults(InferOptions(), checkpoint).model == "/elsewhere"
    (checkpoint / "adapter_config.json").write_text("{}")
    with pytest.raises(OmniError, match="cannot tell which base model .* pass it with --model"):
        with_training_defaults(InferOptions(), checkpoint)
