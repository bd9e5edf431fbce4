"""Options of `omni sft`, `omni pt` and `omni rlhf`, and of the built-in tuners.

This module is light (no torch, no transformers): the CLI builds flags from it on every invocation.
Field names follow transformers' `TrainingArguments` where one exists; ms-swift spellings are aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from omni.data.options import DataOptions
from omni.errors import OmniError
from omni.models.options import ModelOptions
from omni.options import option
from omni.template.options import TemplateCliOptions


@dataclass
class TrainingOptions:
    """The training loop: optimisation, schedule, batching, evaluation, checkpoints and logging."""

    tuner: str = option(
        "lora", help="how parameters train: lora, full, freeze ...", aliases=("train_type", "tuner_type")
    )
    adapter_name: str | None = option(
        None,
        help="name of the trained adapter, recorded in args.json: `omni infer|serve --adapters DIR` load it under "
        "this name (default: the folder's name)",
    )
    quant_method: str | None = option(
        None, help="quantize the base model while loading it (QLoRA): bnb; --quant-bits alone means bnb"
    )
    quant_bits: int | None = option(None, help="bits of the quantized base model: 4 (NF4) or 8")
    output_dir: str | None = option(
        None, help="where checkpoints, the final model, args.json and logs go (default: output/MODEL/vN-TIMESTAMP)"
    )
    num_train_epochs: float = option(3.0, help="passes over the training set", aliases=("epochs",))
    max_steps: int = option(-1, help="stop after this many optimizer steps (overrides epochs when > 0)")
    per_device_train_batch_size: int = option(1, help="rows per device per forward pass", aliases=("batch_size",))
    per_device_eval_batch_size: int = option(1, help="rows per device per evaluation forward pass")
    gradient_accumulation_steps: int = option(1, help="forward passes per optimizer step")
    learning_rate: float = option(1e-4, help="peak learning rate (typical: 1e-4 for LoRA, 1e-5 for full)")
    weight_decay: float = option(0.1, help="AdamW weight decay")
    max_grad_norm: float = option(1.0, help="gradient clipping norm")
    lr_scheduler_type: str = option("cosine", help="learning-rate schedule: cosine, linear, constant ...")
    warmup_ratio: float = option(0.05, help="fraction of the steps spent warming the learning rate up")
    warmup_steps: int = option(0, help="warm-up steps (overrides --warmup-ratio when > 0)")
    gradient_checkpointing: bool = option(True, help="recompute activations in backward to save memory")
    padding_free: bool = option(
        False, help="concatenate each batch into one row: no pad tokens, no cross-row attention"
    )
    packing: bool = option(False, help="bin-pack rows into rows of --max-length (implies --padding-free)")
    loss_chunk_tokens: int = option(
        1024,
        help="batches with more target positions than this score them this many at a time, never holding the whole "
        "tokens x vocabulary logits (0: always all at once)",
    )
    use_liger_kernel: bool = option(
        False,
        help="liger-kernel's fused RMSNorm, RoPE and SwiGLU (CUDA only; pip install 'omni-core[liger]'); the loss "
        "stays omni's (--loss-chunk-tokens)",
    )
    torch_compile: bool = option(False, help="compile the model with torch.compile (transformers' torch_compile)")
    seed: int = option(42, help="seed for weight init, dropout and data order")
    logging_steps: int = option(5, help="log loss, learning rate and throughput every N steps")
    eval_steps: int | None = option(None, help="evaluate every N steps (default: at --save-steps)")
    metric_for_best_model: str | None = option(
        None,
        help="an evaluation metric to track the best checkpoint by (trainer_state.json's best_model_checkpoint, kept "
        "from rotation): loss (of --val-dataset), or one a callback plugin logs, e.g. gsm8k_accuracy",
    )
    greater_is_better: bool | None = option(
        None, help="whether a larger --metric-for-best-model is better (default: false for names ending in loss)"
    )
    save_strategy: Literal["steps", "epoch", "no"] = option("steps", help="when to write checkpoint-N directories")
    save_steps: int = option(500, help="write a checkpoint every N steps (with --save-strategy steps)")
    save_total_limit: int | None = option(2, help="keep at most N checkpoints (oldest deleted first)")
    report_to: list[str] = option(
        default_factory=lambda: ["none"], help="experiment trackers: none, tensorboard, wandb ..."
    )
    resume_from_checkpoint: str | None = option(
        None, help="continue a run from a checkpoint-N directory, or 'last' for the newest in --output-dir"
    )
    dataloader_num_workers: int = option(0, help="worker processes that collate batches")
    # Multimodal models (a model spec with `parts`): unset leaves the part as the tuner has it (full tuning
    # trains every part, LoRA adapts the language model only).
    freeze_llm: bool | None = option(
        None, help="multimodal models: true freezes the language model, false trains it in full"
    )
    freeze_vision: bool | None = option(
        None, help="multimodal models: true freezes the vision tower, false trains it in full", aliases=("freeze_vit",)
    )
    freeze_audio: bool | None = option(
        None, help="multimodal models: true freezes the audio tower, false trains it in full"
    )
    freeze_aligner: bool | None = option(
        None,
        help="multimodal models: true freezes the projections from the towers into the language model, false "
        "trains them in full",
    )


@dataclass
class LaunchOptions:
    """How many processes train, and where: torchrun's settings, with ms-swift's environment variables.

    Unset flags fall back to ``NPROC_PER_NODE``, ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    """

    nproc_per_node: int | None = option(
        None, help="training processes on this node, one per GPU (env NPROC_PER_NODE; default 1)"
    )
    nnodes: int | None = option(None, help="nodes taking part in the run (env NNODES; default 1)")
    node_rank: int | None = option(None, help="this node's index, 0 to nnodes-1 (env NODE_RANK; default 0)")
    master_addr: str | None = option(
        None, help="address of node 0, reachable from every node (env MASTER_ADDR; default 127.0.0.1)"
    )
    master_port: int | None = option(
        None, help="port of the rendezvous on node 0 (env MASTER_PORT; default: a free port on one node, else 29500)"
    )

    def resolved(self, environ: Mapping[str, str]) -> LaunchOptions:
        """These options with unset fields taken from `environ` (the ms-swift variables), then the defaults."""

        def pick(value: Any, variable: str, default: Any, kind: type) -> Any:
            if value is not None:
                return value
            raw = environ.get(variable, "")
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise OmniError(f"environment variable {variable}={raw!r} must be {kind.__name__}") from None

        return LaunchOptions(
            nproc_per_node=pick(self.nproc_per_node, "NPROC_PER_NODE", 1, int),
            nnodes=pick(self.nnodes, "NNODES", 1, int),
            node_rank=pick(self.node_rank, "NODE_RANK", 0, int),
            master_addr=pick(self.master_addr, "MASTER_ADDR", None, str),
            master_port=pick(self.master_port, "MASTER_PORT", None, int),
        )


@dataclass
class FsdpOptions:
    """Options of the built-in `fsdp` strategy (PyTorch FSDP2 through accelerate)."""

    fsdp: str | None = option(
        None,
        help="shard parameters, gradients and optimizer state with FSDP2: full_shard, shard_grad_op, offload "
        "(full_shard with parameters and optimizer state in CPU memory), or a JSON/YAML file of accelerate's "
        "fsdp_config keys",
    )
    fsdp_config: str | None = option(
        None, help="a JSON/YAML file of accelerate's fsdp_config keys, applied over the --fsdp preset"
    )
    context_parallel_size: int = option(
        1,
        help="split each row's sequence across this many processes with ring attention (torch's context "
        "parallel through accelerate; CUDA GPUs only); the number of processes must be a multiple of it "
        "(accelerate: --parallelism_config_cp_size, Megatron-SWIFT: --context_parallel_size)",
    )


@dataclass
class TrainOptions(ModelOptions, DataOptions, TemplateCliOptions, LaunchOptions, TrainingOptions):
    """Everything `omni sft` and `omni pt` take (tuner and quantizer options join when selected)."""


@dataclass
class RlhfOptions(TrainOptions):
    """`omni rlhf`: the training options plus which preference or RL algorithm runs."""

    algo: str = option("dpo", help="the algorithm: dpo, kto, orpo, simpo, grpo ...", aliases=("rlhf_type",))


@dataclass
class FreezeOptions:
    """Options of the built-in `freeze` tuner: which parameters train (by name prefix or glob)."""

    trainable_parts: list[str] = option(
        default_factory=list,
        help="parameter-name prefixes or globs that train (all others freeze)",
        aliases=("trainable_parameters",),
    )
    freeze_parts: list[str] = option(
        default_factory=list,
        help="parameter-name prefixes or globs that stay frozen (all others train)",
        aliases=("freeze_parameters",),
    )
