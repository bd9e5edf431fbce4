"""`omni rlhf --algo dpo ...` from the command line: help, data errors, a LoRA run that `omni infer` serves."""

from __future__ import annotations

import json

import pytest
from omni.api import DataError, Row

from tests.preference_task import preference_rows, template_for, write_jsonl

QUESTION = "Say A or B about the sun."


@pytest.mark.parametrize("flag", ["--algo", "--rlhf-type", "--rlhf_type"])
def test_help_shows_the_dpo_options(omni_cli, flag):
    result = omni_cli("rlhf", flag, "dpo", "--help")
    assert result.returncode == 0, result.stderr
    assert "algorithm 'dpo' options (omni-plugin-dpo)" in result.stdout
    for name in ("--beta", "--loss-type", "--label-smoothing", "--rpo-alpha", "--ref-model"):
        assert name in result.stdout


def test_each_method_shows_its_own_options(omni_cli):
    expected = {"kto": "--desirable-weight", "simpo": "--simpo-gamma", "cpo": "--cpo-alpha", "orpo": "--beta"}
    for method, flag in expected.items():
        result = omni_cli("rlhf", "--algo", method, "--help")
        assert f"algorithm '{method}' options" in result.stdout and flag in result.stdout


def test_a_pair_without_rejected_answer_names_its_line_and_the_field(omni_cli, tiny_model, tmp_path):
    rows = preference_rows(3, seed=0)
    del rows[1]["rejected_response"]
    data = write_jsonl(rows, tmp_path / "pairs.jsonl")
    result = omni_cli(
        "rlhf", "--algo", "dpo", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert f"{data}:2:" in result.stderr and "`rejected_response` (or `rejected_messages`)" in result.stderr


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "`messages` ending with an assistant answer"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}]},
            "needs a boolean `label`",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}], "label": "yes"},
            "`label` must be true or false",
        ),
    ],
)
def test_kto_rows_missing_what_kto_needs_are_errors(tiny_model, row, message):
    from omni_plugin_dpo.encoding import encode_preference_rows

    with pytest.raises(DataError, match=message) as caught:
        encode_preference_rows(template_for(tiny_model), [Row(row, "kto.jsonl", 7)], method="kto", shape="unpaired")
    assert str(caught.value).startswith("kto.jsonl:7:")


def test_pairs_and_rejected_messages_encode_with_omnis_template(tiny_model):
    from omni_plugin_dpo.encoding import encode_pair

    template = template_for(tiny_model)
    row = preference_rows(1, seed=3)[0]
    pair = encode_pair(template, row, "dpo")
    assert pair["prompt_ids"] + pair["chosen_ids"] == template.encode(row).input_ids  # exactly omni's chat format
    rejected_conversation = [*row["messages"][:-1], {"role": "assistant", "content": row["rejected_response"]}]
    as_messages = {"messages": row["messages"], "rejected_messages": rejected_conversation}
    assert encode_pair(template, as_messages, "dpo") == pair


@pytest.mark.slow  # two CLI processes: about 35 s on 2 cores
def test_dpo_with_lora_from_the_cli_writes_an_adapter_omni_infer_serves(omni_cli, tiny_model, tmp_path):
    data = write_jsonl(preference_rows(8, seed=0), tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    result = omni_cli(
        "rlhf", "--rlhf-type", "dpo", "--model", str(tiny_model), "--dataset", str(data), "--tuner", "lora",
        "--beta", "0.2", "--loss-type", "sigmoid", "--max-steps", "2", "--per-device-train-batch-size", "4",
        "--logging-steps", "1", "--gradient-checkpointing", "false", "--output-dir", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()  # no reference copy saved
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "loss" in r]
    assert len(steps) == 2
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert all(key in r for r in steps), key
    assert json.loads((out / "args.json").read_text())["plugin_options"]["algo"][0]["beta"] == 0.2
    from omni.api import GenerationConfig, InferRequest, PtEngine

    served = omni_cli("infer", "--adapters", str(out), "--query", QUESTION, "--max-new-tokens", "4")
    assert served.returncode == 0, served.stderr  # the adapter's args.json names its base model
    engine = PtEngine(str(tiny_model), adapters={"dpo": str(out)})
    request = InferRequest({"messages": [{"role": "user", "content": QUESTION}]}, GenerationConfig(4), "dpo")
    assert served.stdout == engine.generate([request])[0].choices[0].text + "\n"


@pytest.mark.parametrize("ref_flag", [False, True])
def test_full_tuning_loads_the_reference_with_omnis_loader(tiny_model, tmp_path, capsys, ref_flag):
    from omni.cli.main import main

    data = write_jsonl(preference_rows(4, seed=0), tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    argv = ["rlhf", "--algo", "dpo", "--model", str(tiny_model), "--dataset", str(data), "--tuner", "full"]
    argv += ["--max-steps", "1", "--per-device-train-batch-size", "4", "--gradient-checkpointing", "false"]
    argv += ["--output-dir", str(out), *(["--ref-model", str(tiny_model)] if ref_flag else [])]
    assert main(argv) == 0
    assert f"reference model from {tiny_model}" in capsys.readouterr().err
    assert (out / "model.safetensors").is_file()


def test_streaming_is_refused_before_a_model_loads(omni_cli, tmp_path):
    data = write_jsonl(preference_rows(2, seed=0), tmp_path / "pairs.jsonl")
    result = omni_cli("rlhf", "--algo", "dpo", "--model", "/nonexistent", "--dataset", str(data), "--streaming")
    assert result.returncode == 2
    assert "dpo needs its rows in memory; drop --streaming" in result.stderr


@pytest.mark.slow  # SmolLM2-135M: about 45 s on 2 cores
def test_lora_dpo_on_the_embedded_smollm2_serves_through_omni_infer(omni_cli, tmp_path):
    from omni.api import GenerationConfig, InferRequest, PtEngine
    from omni.models.embedded import smollm2_path

    data = write_jsonl(preference_rows(16, seed=0), tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    trained = omni_cli(
        "rlhf", "--algo", "dpo", "--dataset", str(data), "--tuner", "lora", "--max-steps", "2",
        "--batch-size", "4", "--learning-rate", "5e-5", "--save-strategy", "no", "--output-dir", str(out),
        timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "reference = the base model with the fresh adapter disabled" in trained.stderr
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert all("rewards/accuracies" in r for r in logged if "loss" in r)
    served = omni_cli("infer", "--adapters", str(out), "--query", QUESTION, "--max-new-tokens", "6", timeout=600)
    assert served.returncode == 0, served.stderr
    engine = PtEngine(str(smollm2_path()), adapters={"dpo": str(out)})
    request = InferRequest({"messages": [{"role": "user", "content": QUESTION}]}, GenerationConfig(6), "dpo")
    assert served.stdout == engine.generate([request])[0].choices[0].text + "\n"
