"""omni init in a terminal (a pty driven by pexpect): the wizard offers what is installed, asks again after a
mistake, writes a config, and the `omni sft --config` it prints and starts trains from it unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import yaml


def test_the_wizard_writes_a_config_that_omni_sft_trains_from(tiny_model_dir: Path, tmp_path: Path):
    data = tmp_path / "greetings.jsonl"
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    data.write_text((json.dumps(row) + "\n") * 2)
    config, output = tmp_path / "run.yaml", tmp_path / "out"
    wizard = pexpect.spawn(
        sys.executable, ["-m", "omni", "init", "--output", str(config)], cwd=tmp_path, encoding="utf-8", timeout=120
    )

    def answer(prompt: str, text: str) -> None:
        wizard.expect_exact(prompt)
        wizard.sendline(text)

    wizard.expect_exact("3) rlhf")  # the training commands installed
    answer("choose a number or a name [sft]: ", "sft")
    answer("model [smollm2-135m-instruct]: ", str(tmp_path / "no-such-model"))
    answer("no such folder", str(tiny_model_dir))
    answer("dataset: ", str(tmp_path / "missing.jsonl"))
    answer("no such file", str(data))
    wizard.expect(r"\d\) lora +low-rank adapters")  # the tuners the installed plugins register
    answer("choose a number or a name [lora]: ", "lora")
    answer("num_train_epochs [3.0]: ", "")
    answer("max_steps [-1]: ", "2")
    answer("learning_rate [0.0001]: ", "fast")
    answer("learning_rate must be float, got 'fast'", "0.001")
    answer("max_length: ", "32")
    answer("per_device_train_batch_size [1]: ", "2")
    answer("output_dir: ", str(output))
    answer("Set the lora tuner's options too? (y/n) [n]: ", "y")
    wizard.expect_exact("--lora-rank: ")  # a plugin's option, with its help
    answer("lora_rank [8]: ", "4")
    while wizard.expect([r"  \w+(?: \[[^\]\n]*\])?: ", "Write the config to"]) == 0:
        wizard.sendline("")  # the tuner's other options keep their defaults
    wizard.sendline("")  # the --output path
    wizard.expect_exact(f"omni sft --config {config}")
    answer("Start it now? (y/n) [n]: ", "y")
    wizard.expect(pexpect.EOF, timeout=600)
    wizard.close()
    assert wizard.exitstatus == 0, wizard.before[-3000:]

    written = yaml.safe_load(config.read_text())
    assert {key: written[key] for key in ("model", "dataset", "tuner", "max_steps", "lora_rank")} == {
        "model": str(tiny_model_dir),
        "dataset": [str(data)],
        "tuner": "lora",
        "max_steps": 2,
        "lora_rank": 4,
    }
    recorded = json.loads((output / "args.json").read_text())
    assert recorded["max_steps"] == 2 and recorded["plugin_options"]["tuner"][0]["lora_rank"] == 4
    steps = [json.loads(line)["step"] for line in (output / "logging.jsonl").read_text().splitlines()]
    assert max(steps) == 2
