"""omni-plugin-deepspeed: ZeRO presets and configs, and real DeepSpeed runs on 2 CPU processes (gloo).

The runs compare against one process with the same global batch, resume a killed ZeRO-3 run, load its output
without DeepSpeed, and train DPO (reference model under ZeRO-3) and GRPO (ZeRO-3 weights gathered for rollouts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

from tests.core.test_distributed import assert_same_weights, losses
from tests.helpers import OMNI, run_omni
from tests.preference_task import preference_rows
from tests.token_task import write_task

NO_SAVES = "--logging-steps 1 --save-strategy no --gradient-checkpointing false".split()


def _omni(*argv: str, plugins: str = "deepspeed") -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": plugins})):
        return main(list(argv))


def omni_ok(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 600):
    result = run_omni(*map(str, argv), env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload"])
def test_every_ms_swift_preset_loads_with_auto_values_for_the_trainer(preset):
    from omni_plugin_deepspeed.options import DeepSpeedOptions
    from omni_plugin_deepspeed.strategy import DeepSpeedStrategy

    strategy = DeepSpeedStrategy(DeepSpeedOptions(preset))
    assert strategy.stage == int(preset[4])
    assert strategy.config["train_micro_batch_size_per_gpu"] == "auto"
    assert strategy.shards_parameters() == (strategy.stage == 3)
    if preset == "zero3_offload":
        assert strategy.describe() == "DeepSpeed ZeRO-3, optimizer and param offloaded to CPU (zero3_offload)"
    if strategy.stage == 3:
        assert strategy.zero["stage3_gather_16bit_weights_on_model_save"] is True


def test_help_shows_deepspeed_only_where_the_plugin_is_installed(capsys):
    assert _omni("sft", "--help") == 0
    assert "strategy 'deepspeed' options (omni-plugin-deepspeed)" in capsys.readouterr().out
    assert _omni("sft", "--help", plugins="") == 0
    assert "--deepspeed" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("config", "flags", "message"),
    [
        ('{"zero_optimization": {"stage": 3,\n "overlap_comm": tru}}', [], "ds.json:2:18: not valid JSON"),
        (
            '{"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": false}}',
            [],
            "could not be saved whole",
        ),
        ("{}", ["--fsdp", "full_shard"], "--deepspeed and --fsdp cannot be combined"),
        ('{"zero_optimization": {"stage": 3}}', ["--quant-bits", "4"], "ZeRO-3 cannot partition quantized weights"),
    ],
)
def test_config_mistakes_are_one_line_errors_before_the_model_loads(config, flags, message, tmp_path, colors, capsys):
    path = tmp_path / "ds.json"
    path.write_text(config)
    code = _omni("sft", "--model", "/nonexistent", "--dataset", str(colors), "--deepspeed", str(path), *flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "/nonexistent" not in err, err


def test_an_unknown_preset_names_the_presets(colors, capsys):
    assert _omni("sft", "--dataset", str(colors), "--deepspeed", "zero4") == 2
    assert (
        "--deepspeed zero4: not a preset (zero0, zero1, zero2, zero3, zero2_offload, zero3_offload)"
        in capsys.readouterr().err
    )


@pytest.mark.slow  # SmolLM2-135M, six short runs: a few minutes on 2 cores
def test_zero3_and_fsdp2_train_smollm2_as_one_process_does_full_and_lora(colors, tmp_path):
    from omni.models.embedded import smollm2_path

    smollm2_path()  # converted once here, not by two processes at once
    common = ["sft", "--dataset", colors, "--max-steps", "3", *NO_SAVES]
    runs = {}
    for tuner, lr in (("full", "2e-5"), ("lora", "2e-3")):
        base = [*common, "--tuner", tuner, "--learning-rate", lr]
        runs[tuner, "one"] = tmp_path / f"{tuner}-one"
        omni_ok(*base, "--batch-size", "4", "--output-dir", runs[tuner, "one"])
        for strategy in (["--deepspeed", "zero3"], ["--fsdp", "full_shard"]):
            out = runs[tuner, strategy[0]] = tmp_path / f"{tuner}{strategy[0]}"
            omni_ok(*base, "--batch-size", "2", "--output-dir", out, *strategy, env={"NPROC_PER_NODE": "2"})
            # Summation order differs between one and two processes; LoRA at lr 2e-3 amplifies it most.
            assert losses(out) == pytest.approx(losses(runs[tuner, "one"]), rel=1e-3), (tuner, strategy)
    assert_same_weights(runs["full", "one"], runs["full", "--deepspeed"], tol=1e-4)
    assert_same_weights(runs["full", "one"], runs["full", "--fsdp"], tol=1e-4)

    # The ZeRO-3 outputs load without DeepSpeed: a whole model for transformers, an adapter for peft and omni infer.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    full = AutoModelForCausalLM.from_pretrained(runs["full", "--deepspeed"])
    assert full.num_parameters() > 100_000_000
    adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(smollm2_path()), runs["lora", "--deepspeed"]
    )
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in adapter.named_parameters())
    answered = omni_ok(
        "infer",
        "--adapters",
        runs["lora", "--deepspeed"],
        "--query",
        "What colour is the sky?",
        "--max-new-tokens",
        "5",
    )
    assert answered.stdout.strip()


@pytest.mark.slow
def test_a_killed_zero3_run_resumes_from_its_last_checkpoint_to_the_uninterrupted_weights(tiny_qwen3, colors, tmp_path):
    argv = [
        "sft",
        "--model",
        tiny_qwen3,
        "--dataset",
        colors,
        "--tuner",
        "full",
        "--max-steps",
        "30",
        "--batch-size",
        "2",
    ]
    argv += [
        "--logging-steps",
        "1",
        "--save-steps",
        "2",
        "--gradient-checkpointing",
        "false",
        "--learning-rate",
        "3e-3",
    ]
    argv += ["--deepspeed", "zero3", "--nproc-per-node", "2"]
    whole = tmp_path / "whole"
    omni_ok(*argv, "--output-dir", whole)

    killed = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    run = subprocess.Popen(
        [str(OMNI), *map(str, argv), "--output-dir", str(killed)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint-4" / "trainer_state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the launcher and both training processes
    assert run.wait() == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()

    resumed = omni_ok(*argv, "--output-dir", killed, "--resume-from-checkpoint", "last")
    assert "resuming from" in resumed.stderr
    assert json.loads((killed / "all_results.json").read_text())["train_runtime"] > 0
    assert_same_weights(whole, killed)

    # The ZeRO-3 model (saved as whole 16-bit weights) loads with transformers alone and answers through omni.
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(killed).num_parameters() > 0
    answer = omni_ok("infer", "--model", killed, "--query", "What colour is the sky?", "--max-new-tokens", "4")
    assert answer.stdout.strip()


@pytest.mark.slow
def test_dpo_under_zero3_moves_the_policy_towards_the_chosen_answers(tiny_qwen3, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in preference_rows(16, seed=0)))
    out = tmp_path / "dpo"
    result = omni_ok(
        "rlhf", "--algo", "dpo", "--model", tiny_qwen3, "--dataset", data, "--tuner", "full", "--max-steps", "3",
        "--batch-size", "2", "--learning-rate", "1e-3", "--output-dir", out, *NO_SAVES,
        "--deepspeed", "zero3", "--nproc-per-node", "2",
    )  # fmt: skip
    assert "2 processes: DeepSpeed ZeRO-3 (zero3)" in result.stderr
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    margins = [r["rewards/margins"] for r in logged if "rewards/margins" in r]
    assert len(margins) == 3 and margins[-1] > margins[0]  # chosen answers gain on rejected ones vs the reference
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_grpo_rolls_out_with_the_policy_gathered_from_zero3(tiny_qwen3, tmp_path):
    data, rewards = write_task(tmp_path / "task", count=16)
    out = tmp_path / "grpo"
    result = omni_ok(
        "rlhf", "--algo", "grpo", "--model", tiny_qwen3, "--dataset", data, "--tuner", "full",
        "--reward-funcs", f"{rewards}:band_share", "--num-generations", "4", "--max-completion-length", "8",
        "--batch-size", "4", "--max-steps", "3", "--learning-rate", "1e-3", "--output-dir", out, *NO_SAVES,
        "--deepspeed", "zero3", "--nproc-per-node", "2",
    )  # fmt: skip
    assert "2 processes: DeepSpeed ZeRO-3 (zero3)" in result.stderr
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert sum("reward" in r for r in logged) == 3
    assert (out / "completions.jsonl").stat().st_size > 0 and (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_qlora_trains_under_zero2(tiny_qwen3, colors, tmp_path):
    out = tmp_path / "qlora"
    result = omni_ok(
        "sft", "--model", tiny_qwen3, "--dataset", colors, "--tuner", "lora", "--quant-bits", "4", "--max-steps", "4",
        "--batch-size", "2", "--learning-rate", "3e-3", "--output-dir", out, *NO_SAVES,
        "--deepspeed", "zero2", "--nproc-per-node", "2",
    )  # fmt: skip
    assert "DeepSpeed ZeRO-2 (zero2)" in result.stderr
    assert losses(out)[-1] < losses(out)[0]
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()


PARTITIONED_LOAD = """
import os
import sys
from pathlib import Path
from omni_plugin_deepspeed.options import DeepSpeedOptions
from omni_plugin_deepspeed.strategy import DeepSpeedStrategy
from omni.train.launch import leave_process_group
from omni.train.options import TrainOptions
from transformers import AutoModelForCausalLM

strategy = DeepSpeedStrategy(DeepSpeedOptions("zero3"))
strategy.before_model_load(TrainOptions(), model_path=sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
held = sum(p.numel() for p in model.parameters())
whole = sum(p.ds_numel for p in model.parameters())
Path(sys.argv[2], f"rank{os.environ['RANK']}.txt").write_text(f"{held} {whole}")
leave_process_group()  # as omni's commands do: a process leaving a live group can abort at shutdown
"""


def test_under_zero3_each_process_loads_only_its_partition(tiny_qwen3, tmp_path):
    import sys

    script = tmp_path / "load.py"
    script.write_text(PARTITIONED_LOAD)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", str(script), str(tiny_qwen3),
         str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # zero.Init partitioned every parameter as it loaded: no process holds any whole weight.
    counts = [tuple(map(int, (tmp_path / f"rank{rank}.txt").read_text().split())) for rank in (0, 1)]
    assert all(held == 0 and whole > 100_000 for held, whole in counts), counts
