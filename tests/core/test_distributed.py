"""Training on several processes: the launcher (`--nproc-per-node`, `--nnodes`, ms-swift's environment variables),
data parallelism and the built-in FSDP2 strategy, against a one-process run of the same global batch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugins import load_plugins, using_host
from omni.train.options import LaunchOptions

from tests.helpers import OMNI, run_omni

STEPS = "--max-steps 4 --logging-steps 1 --save-strategy no --gradient-checkpointing false --learning-rate 3e-3".split()


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]


def weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


def assert_same_weights(a: Path, b: Path, tol: float = 1e-5) -> None:
    left, right = weights(a), weights(b)
    common = left.keys() & right.keys()
    # A gathered state dict may also hold a tied weight (lm_head) that transformers' own save leaves out.
    assert len(common) == min(len(left), len(right)) > 0, (sorted(left), sorted(right))
    for name in common:
        assert (left[name] - right[name]).abs().max() < tol, name


def sft(model: Path, data: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--tuner", "full", "--output-dir", str(out)]
    result = run_omni(*argv, *STEPS, *extra, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _omni(*argv: str, plugins: str = "") -> int:
    with using_host(load_plugins({"OMNI_PLUGINS": plugins})):
        return main(list(argv))


def test_launch_settings_come_from_flags_then_ms_swift_variables():
    env = {"NPROC_PER_NODE": "4", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29600"}
    assert LaunchOptions().resolved(env) == LaunchOptions(4, 2, 1, "10.0.0.1", 29600)
    assert LaunchOptions(nproc_per_node=2).resolved(env).nproc_per_node == 2  # a flag beats the variable
    assert LaunchOptions().resolved({}) == LaunchOptions(1, 1, 0, None, None)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {"NPROC_PER_NODE": "two"}, "environment variable NPROC_PER_NODE='two' must be int"),
        (["--nproc-per-node", "1", "--nnodes", "2"], {}, "--nnodes > 1 needs --master-addr"),
        (["--nnodes", "2", "--node-rank", "2", "--master-addr", "127.0.0.1"], {}, "--node-rank 2 is not in 0..1"),
        (["--nnodes", "2", "--master-addr", "127.0.0.1"], {}, "--nnodes > 1 needs --output-dir"),
        (
            [],
            {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "RANK": "1"},
            "[rank 1] a run of several processes needs --output-dir",
        ),
        (["--fsdp", "full_shard", "--quant-bits", "4"], {}, "--fsdp does not shard quantized weights"),
        (
            ["--fsdp", "nosuch.yaml"],
            {},
            "--fsdp nosuch.yaml: no such file (or use one of: full_shard, shard_grad_op, offload)",
        ),
    ],
)
def test_launch_and_strategy_mistakes_are_one_line_errors_before_any_model_loads(
    argv, env, message, colors, monkeypatch, capsys
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _omni("sft", "--model", "/nonexistent/model", "--dataset", str(colors), *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "/nonexistent/model" not in err  # refused before the model was looked for


def test_fsdp_config_file_errors_name_the_file_and_line(tmp_path, colors, capsys):
    bad = tmp_path / "fsdp.yaml"
    bad.write_text("reshard_after_forward: true\nversion: [2\n")
    assert _omni("sft", "--dataset", str(colors), "--fsdp", str(bad), "--nproc-per-node", "2") == 2
    assert f"{bad}:3: not valid YAML" in capsys.readouterr().err


def test_switching_on_an_uninstalled_strategy_names_its_plugin(colors, capsys):
    assert _omni("sft", "--dataset", str(colors), "--deepspeed", "zero3") == 2
    assert (
        "--deepspeed needs the omni-plugin-deepspeed plugin: pip install omni-plugin-deepspeed"
        in capsys.readouterr().err
    )


def test_a_tuner_that_cannot_shard_is_refused_under_fsdp(colors, capsys):
    assert _omni("sft", "--dataset", str(colors), "--tuner", "reft", "--fsdp", "full_shard", plugins="reft") == 2
    assert "--tuner reft does not train with sharded parameters (FSDP2 (full_shard))" in capsys.readouterr().err


@pytest.mark.slow
def test_data_parallel_and_fsdp2_on_two_processes_equal_one_process(tiny_qwen3, colors, tmp_path):
    one = tmp_path / "one"
    sft(tiny_qwen3, colors, one, "--batch-size", "4")
    ddp = tmp_path / "ddp"
    launched = sft(tiny_qwen3, colors, ddp, "--batch-size", "2", "--nproc-per-node", "2")
    assert "2 processes: data parallel (DDP)" in launched.stderr
    assert launched.stderr.count("trained 4 steps") == 1  # the main process alone reports and writes
    fsdp = tmp_path / "fsdp"
    sharded_run = [tiny_qwen3, colors, fsdp, "--batch-size", "2", "--fsdp", "full_shard", "--save-strategy", "steps"]
    sharded = sft(*sharded_run, "--save-steps", "2", env={"NPROC_PER_NODE": "2"})
    assert "2 processes: FSDP2 (full_shard)" in sharded.stderr
    baseline = losses(one)
    assert len(baseline) == 4 and baseline[-1] < baseline[0]
    for run in (ddp, fsdp):
        assert losses(run) == pytest.approx(baseline, rel=1e-5)
        assert_same_weights(one, run)
    recorded = json.loads((fsdp / "args.json").read_text())["plugin_options"]["strategies"]
    assert {"fsdp": "full_shard", "fsdp_config": None, "context_parallel_size": 1} in recorded
    # FSDP2's sharded checkpoint resumes to the same end.
    resumed = tmp_path / "resumed"
    shutil.copytree(fsdp / "checkpoint-2", resumed / "checkpoint-2")
    sharded_run[2] = resumed
    sft(*sharded_run, "--resume-from-checkpoint", "last", env={"NPROC_PER_NODE": "2"})
    assert_same_weights(one, resumed)


@pytest.mark.slow
def test_two_nodes_on_loopback_train_as_one_node_with_two_processes(tiny_qwen3, colors, tmp_path):
    from omni.train.launch import free_port

    one_node = tmp_path / "one-node"
    sft(tiny_qwen3, colors, one_node, "--batch-size", "2", "--nproc-per-node", "2")
    two_nodes = tmp_path / "two-nodes"
    node = ["--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    argv = [str(OMNI), "sft", "--model", str(tiny_qwen3), "--dataset", str(colors), "--tuner", "full", *STEPS]
    argv += ["--batch-size", "2", "--output-dir", str(two_nodes), *node]
    nodes = [subprocess.Popen([*argv, "--node-rank", str(rank)], stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    errors = [n.communicate(timeout=300)[1] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], errors
    assert "launching 1 process(es) on node 1 of 2" in errors[1]
    assert losses(two_nodes) == pytest.approx(losses(one_node), rel=1e-5)
    assert_same_weights(one_node, two_nodes)
