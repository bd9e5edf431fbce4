"""`omni rlhf --algo X` hands an algorithm plugin the same prepared job `sft` gets, with its own options."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass

from omni import hookimpl
from omni.cli.main import main
from omni.options import option
from omni.registry import AlgorithmSpec

SEEN: dict = {}


@dataclass
class PairOptions:
    beta: float = option(0.1, help="preference strength")


def run_pairs(job):
    """A stand-in preference algorithm: records what it was given, then trains through the job's machinery."""
    from omni.train.sft import run_sft

    SEEN.update(job=job, rows=list(job.train_rows))
    return run_sft(job)


def test_rlhf_runs_a_plugin_algorithm_on_the_prepared_job(register_plugin, tmp_path):
    from omni.testing.models import build_tiny_model

    plugin = types.ModuleType("omni_plugin_pairs")
    plugin.run_pairs = run_pairs

    @hookimpl
    def register_algorithms(register):
        register(
            AlgorithmSpec(
                name="pairs", command="rlhf", description="test", impl=f"{__name__}:run_pairs", options=PairOptions
            )
        )

    plugin.register_algorithms = register_algorithms
    register_plugin(plugin, name="pairs", distribution="omni-plugin-pairs")
    model = build_tiny_model("qwen3", tmp_path / "m")
    row = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "rejected_response": "go away",
    }
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    argv = ["rlhf", "--rlhf_type", "pairs", "--beta", "0.5", "--model", str(model), "--dataset", str(data)]
    argv += ["--tuner", "full", "--max-steps", "1", "--gradient-checkpointing", "false", "--output-dir", str(out)]
    assert main(argv) == 0
    job = SEEN["job"]
    assert job.command == "rlhf" and job.algorithm_options == PairOptions(beta=0.5)
    assert SEEN["rows"][0]["rejected_response"] == "go away"  # algorithm columns reach the algorithm
    assert job.template.encode(SEEN["rows"][0]).input_ids and job.output_dir == out
    assert (out / "model.safetensors").is_file() and json.loads((out / "args.json").read_text())["algo"] == "pairs"
