"""`--fsdp ... --context-parallel-size N`: each row split across N processes with torch's ring attention
(context parallel), through accelerate's `ParallelismConfig` and the transformers Trainer.

torch's ring attention runs only CUDA's sdpa kernels: on CPU over gloo it fails (checked below on 2 processes),
so omni refuses it there in one line. What runs without a GPU is checked here (the refusals, the configuration the
Trainer gets, the batches); the equality with one process is the GPU test, skipped without 2 CUDA devices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from omni.errors import OmniError
from omni.registry import ModelSpec
from omni.template.base import IGNORE_INDEX
from omni.train.collators import PaddingCollator, SequenceShardCollator
from omni.train.fsdp import FsdpStrategy
from omni.train.options import FsdpOptions, TrainOptions

from tests.core.test_distributed import _omni, sft

CP = ["--nproc-per-node", "2", "--fsdp", "full_shard", "--context-parallel-size", "2"]


@pytest.mark.parametrize(
    ("flags", "plugins", "message"),
    [
        (["--nproc-per-node", "2", "--context-parallel-size", "2"], "",
         "--context-parallel-size is an option of the fsdp strategy, which is off: switch it on with --fsdp"),
        (["--nproc-per-node", "3", "--fsdp", "full_shard", "--context-parallel-size", "2"], "",
         "--context-parallel-size 2 does not divide the run's 3 processes"),
        ([*CP[:-1], "0"], "", "--context-parallel-size 0: must be at least 1"),
        ([*CP, "--packing", "true"], "", "--padding-free and --packing cannot run with --context-parallel-size"),
        ([*CP, "--attn-impl", "eager"], "", "--attn-impl eager cannot run with --context-parallel-size"),
        ([*CP, "--deepspeed", "zero2"], "deepspeed", "cannot be combined: choose one distributed strategy"),
        ([*CP, "--sequence-parallel-size", "2"], "deepspeed",
         "--sequence-parallel-size is an option of the deepspeed strategy, which is off"),
    ],
)  # fmt: skip
def test_settings_context_parallel_cannot_run_are_one_line_errors_before_the_model_loads(
    flags, plugins, message, colors, capsys
):
    assert _omni("sft", "--model", "/nonexistent", "--dataset", str(colors), *flags, plugins=plugins) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "/nonexistent" not in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_without_a_gpu_context_parallel_is_refused_in_one_line_naming_what_it_needs(colors, capsys):
    assert _omni("sft", "--model", "/nonexistent", "--dataset", str(colors), "--tuner", "full", *CP) == 2
    err = capsys.readouterr().err
    assert "--context-parallel-size needs CUDA GPUs" in err and "--sequence-parallel-size" in err, err
    assert len(err.strip().splitlines()) == 1 and "/nonexistent" not in err, err


def _ring_attention_on_gloo(rank: int, store: Path, reports: Any) -> None:
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental import context_parallel

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("cp",))
    q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
    try:
        with context_parallel(mesh, buffers=[q, k, v], buffer_seq_dims=[2, 2, 2]):
            F.scaled_dot_product_attention(q, k, v, is_causal=True)
        reports.put("ran")
    except Exception as error:
        reports.put(f"{type(error).__name__}: {error}")
    dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks why context parallel is refused without a GPU")
def test_torch_ring_attention_does_not_run_on_cpu_processes(tmp_path):
    """Why omni refuses context parallel without a GPU: torch's CPU sdpa kernel has no ring version. If a torch
    release adds one, this fails, and the refusal can go."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")  # the children start with torch already imported
    reports = fork.Queue()
    processes = [
        fork.Process(target=_ring_attention_on_gloo, args=(rank, tmp_path / "store", reports)) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    outcomes = [reports.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert all("_scaled_dot_product_flash_attention_for_cpu" in line for line in outcomes), outcomes


def test_the_trainer_gets_accelerates_context_parallel_config_and_balanced_batches(tiny_qwen3, monkeypatch):
    from torch.distributed.tensor.experimental._context_parallel._load_balancer import (
        _create_default_load_balancer,
        _HeadTailLoadBalancer,
    )
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("WORLD_SIZE", "4")  # as in one of 4 processes: rows split in 2, 2 groups of rows
    strategy = FsdpStrategy(FsdpOptions(fsdp="full_shard", context_parallel_size=2))
    assert strategy.describe() == "FSDP2, each row split across 2 processes (ring attention) (full_shard)"
    assert strategy.sequence_parallel_size() == 2

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    arguments = strategy.training_arguments(TrainOptions(), model=model, model_spec=None)
    config = arguments["parallelism_config"]
    assert (config.cp_size, config.dp_shard_size, config.dp_replicate_size, config.total_size) == (2, 2, 1, 4)
    assert config.cp_backend == "torch" and config.fsdp_dim_names == ["dp_shard_cp"]
    assert arguments["fsdp"] and arguments["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["Qwen3DecoderLayer"]

    # Batches are padded to 2 chunks per process, the length torch's head-and-tail balancing needs.
    rows = [{"input_ids": list(range(10, 17)), "labels": [IGNORE_INDEX] * 3 + list(range(13, 17))}]
    shards = strategy.sequence_length_multiple()
    batch = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=shards, pad_token_id=0)(rows)
    assert batch["input_ids"].shape == (1, 8) and batch["position_ids"].tolist() == [list(range(8))]
    assert "attention_mask" not in batch  # the Trainer would only check it is causal; the model masks causally
    assert isinstance(_create_default_load_balancer(8, 2, "cpu"), _HeadTailLoadBalancer)


def test_a_model_with_media_inputs_is_refused_with_context_parallel(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    strategy = FsdpStrategy(FsdpOptions(fsdp="full_shard", context_parallel_size=2))
    spec = ModelSpec(name="with-images", description="", impl="omni.models.loader:load", modalities=("text", "image"))
    with pytest.raises(OmniError, match="--context-parallel-size splits text rows only, not a model with image"):
        strategy.training_arguments(TrainOptions(), model=None, model_spec=spec)


def _long_rows(path: Path) -> Path:
    """Four copies of one conversation of ~700 tokens: any order of rows gives the same batches."""
    words = "red green blue cat dog sky tree river stone cloud".split()
    question = " ".join(words[(i * 7) % len(words)] for i in range(150))
    row = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": question[::-1]}]}
    path.write_text((json.dumps(row) + "\n") * 4)
    return path


def _logged(out: Path, key: str) -> list[float]:
    return [r[key] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if key in r]


@pytest.mark.gpu
@pytest.mark.slow  # two short runs of a tiny model, one of them on 2 GPUs
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="context parallel needs 2 CUDA devices")
def test_rows_split_across_two_gpus_with_ring_attention_train_as_one_process_does(tiny_qwen3, tmp_path):
    data = _long_rows(tmp_path / "long.jsonl")
    one, split = tmp_path / "one", tmp_path / "split"
    # bfloat16: the tiny Qwen3's grouped-query attention runs on flash attention only at 16 bits, and ring
    # attention only on flash or memory-efficient kernels. The runs then agree to bfloat16's precision.
    bf16 = ["--torch-dtype", "bfloat16"]
    sft(tiny_qwen3, data, one, *bf16, "--batch-size", "2")
    # Two rows per step either way: here one per micro-batch, each split in halves across the two processes.
    result = sft(tiny_qwen3, data, split, *bf16, "--batch-size", "1", "--gradient-accumulation-steps", "2", *CP)
    assert "each row split across 2 processes (ring attention)" in result.stderr
    assert _logged(split, "loss") == pytest.approx(_logged(one, "loss"), rel=1e-2)
    assert _logged(split, "grad_norm") == pytest.approx(_logged(one, "grad_norm"), rel=1e-2)
