"""ms-swift's `swift sft` flags parse, through the real CLI parser, to the same settings as omni's own."""

from __future__ import annotations

import pytest
from omni.cli.invocation import parse_invocation
from omni.errors import OmniError
from omni.plugins import load_plugins

SWIFT = [
    "--model", "m", "--dataset", "d.jsonl", "--train_type", "lora", "--lora_rank", "16", "--lora_alpha", "64",
    "--lora_dropout", "0.1", "--target_modules", "q_proj", "v_proj", "--num_train_epochs", "2", "--max_steps", "10",
    "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--learning_rate", "2e-4",
    "--lr_scheduler_type", "linear", "--warmup_ratio", "0.1", "--max_length", "512", "--output_dir", "out",
    "--logging_steps", "3", "--save_steps", "7", "--save_strategy", "steps", "--save_total_limit", "1",
    "--eval_steps", "5", "--split_dataset_ratio", "0.1", "--system", "You are helpful.", "--packing", "true",
    "--padding_free", "true", "--torch_dtype", "float32", "--gradient_checkpointing", "false", "--seed", "7",
    "--report_to", "tensorboard", "--model_name", "Omni Bot", "--model_author", "Omni Team", "--use_dora", "true",
    "--quant_bits", "4", "--quant_method", "bnb", "--lorap_lr_ratio", "16", "--init_weights", "pissa",
]  # fmt: skip
OMNI = [
    "--model", "m", "--dataset", "d.jsonl", "--tuner", "lora", "--lora-rank", "16", "--lora-alpha", "64",
    "--lora-dropout", "0.1", "--target-modules", "q_proj", "v_proj", "--num-train-epochs", "2", "--max-steps", "10",
    "--batch-size", "4", "--gradient-accumulation-steps", "2", "--learning-rate", "2e-4",
    "--lr-scheduler-type", "linear", "--warmup-ratio", "0.1", "--max-length", "512", "--output-dir", "out",
    "--logging-steps", "3", "--save-steps", "7", "--save-strategy", "steps", "--save-total-limit", "1",
    "--eval-steps", "5", "--val-split-ratio", "0.1", "--system", "You are helpful.", "--packing",
    "--padding-free", "--torch-dtype", "float32", "--gradient-checkpointing", "false", "--seed", "7",
    "--report-to", "tensorboard", "--model-name", "Omni Bot", "--model-author", "Omni Team", "--use-dora",
    "--quant-bits", "4", "--quant-method", "bnb", "--lora-plus-lr-ratio", "16", "--init-weights", "pissa",
]  # fmt: skip


@pytest.fixture(scope="module")
def registry():
    return load_plugins({"OMNI_PLUGINS": "lora,bnb,datasets"}).registry


def _parse(registry, command, argv):
    return parse_invocation(registry.get("commands", command).spec, argv, registry)


def _settings(invocation):
    return invocation.options, {k: [s.options for s in v] for k, v in invocation.selected.items()}


@pytest.mark.parametrize("command", ["sft", "pt"])
def test_swift_spellings_parse_to_the_same_settings(registry, command):
    swift, omni = _parse(registry, command, SWIFT), _parse(registry, command, OMNI)
    assert _settings(swift) == _settings(omni)
    o = omni.options
    assert (o.tuner, o.per_device_train_batch_size, o.val_split_ratio, o.packing, o.padding_free) == (
        "lora",
        4,
        0.1,
        True,
        True,
    )
    assert (o.quant_method, o.quant_bits, o.gradient_checkpointing, o.report_to) == ("bnb", 4, False, ["tensorboard"])
    lora = omni.selected_one("tuner").options
    assert (lora.lora_rank, lora.use_dora, lora.lora_plus_lr_ratio, lora.init_weights) == (16, True, 16.0, "pissa")
    assert lora.target_modules == ["q_proj", "v_proj"]
    assert omni.selected_one("quant_method").spec.name == "bnb"


def test_tuner_type_is_an_alias_and_lora_is_the_default(registry):
    assert _parse(registry, "sft", ["--tuner_type", "full"]).options.tuner == "full"
    default = _parse(registry, "sft", [])
    assert default.options.tuner == "lora" and default.selected_one("tuner").spec.name == "lora"
    assert default.selected_one("quant_method") is None


def test_freeze_tuner_takes_swift_parameter_flags(registry):
    inv = _parse(registry, "sft", ["--train_type", "freeze", "--trainable_parameters", "model.norm", "lm_head"])
    assert inv.selected_one("tuner").options.trainable_parts == ["model.norm", "lm_head"]
    inv = _parse(registry, "sft", ["--tuner", "freeze", "--freeze-parts", "model.embed_tokens"])
    assert inv.selected_one("tuner").options.freeze_parts == ["model.embed_tokens"]


def test_rlhf_type_alias_selects_the_algorithm(registry):
    from omni.train.command import algorithm_for

    with pytest.raises(OmniError, match="pip install omni-plugin-dpo"):
        _parse(registry, "rlhf", ["--rlhf_type", "dpo"])
    inv = _parse(registry, "rlhf", ["--rlhf_type", "sft"])  # an algorithm of another command
    with pytest.raises(OmniError, match="runs under `omni sft`, not `omni rlhf`"):
        algorithm_for(inv)
