"""The `deepspeed` strategy: the Trainer's DeepSpeed integration with a ZeRO preset or the user's JSON."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from omni.api import OmniError, Strategy, current_processes

from omni_plugin_deepspeed.options import PRESETS, DeepSpeedOptions

ULYSSES_ATTENTION = ("sdpa", "flash_attention_2", "flash_attention_3")  # the kernels Ulysses can wrap


def load_config(value: str) -> dict[str, Any]:
    """The DeepSpeed config `--deepspeed` names: a preset (zero0 ... zero3_offload) or a JSON file."""
    if value in PRESETS:
        return json.loads(resources.files("omni_plugin_deepspeed").joinpath(f"presets/{value}.json").read_text())
    path = Path(value)
    if not path.is_file():
        raise OmniError(f"--deepspeed {value}: not a preset ({', '.join(PRESETS)}) and no such file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OmniError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict) or not isinstance(config.get("zero_optimization", {}), dict):
        raise OmniError(f"{path}: a DeepSpeed config is a JSON object (zero_optimization a mapping)")
    return config


class DeepSpeedStrategy(Strategy):
    """DeepSpeed ZeRO through transformers' integration: "auto" values are filled from omni's options."""

    options: DeepSpeedOptions

    def __init__(self, options: DeepSpeedOptions) -> None:
        super().__init__(options)
        self.config = load_config(options.deepspeed or "")
        zero = self.config.setdefault("zero_optimization", {})
        self.stage = int(zero.get("stage", 0))
        if self.stage == 3:
            # The final save (and `omni export`) needs whole weights that load without DeepSpeed.
            zero.setdefault("stage3_gather_16bit_weights_on_model_save", True)

    def describe(self) -> str:
        offload = [k.removeprefix("offload_") for k, v in self.zero.items() if k.startswith("offload_") and _on(v)]
        where = f", {' and '.join(offload)} offloaded to CPU" if offload else ""
        sequence = self.options.sequence_parallel_size
        split = f", each row split across {sequence} processes (Ulysses)" if sequence > 1 else ""
        return f"DeepSpeed ZeRO-{self.stage}{where}{split} ({self.options.deepspeed})"

    @property
    def zero(self) -> dict[str, Any]:
        return self.config["zero_optimization"]

    def shards_parameters(self) -> bool:
        return self.stage == 3

    def before_model_load(self, options: Any, *, model_path: str) -> None:
        if self.stage != 3:
            return
        from transformers import AutoConfig
        from transformers.integrations import HfDeepSpeedConfig

        # While this object lives, transformers loads each parameter straight into its ZeRO-3 partition
        # (deepspeed.zero.Init): no process ever holds the whole model. It lives as long as the strategy.
        bf16 = _trains_in_bf16(options.torch_dtype, AutoConfig.from_pretrained(model_path))
        self._partitioned_loading = HfDeepSpeedConfig(self._loading_config(options, bf16=bf16))
        _start_communication()  # partitioning talks to the other processes

    def _loading_config(self, options: Any, *, bf16: bool) -> dict[str, Any]:
        """The config with the "auto" values partitioning needs filled as the Trainer will fill them; the rest
        (bucket sizes from the model's width) are left to DeepSpeed's defaults until the Trainer fills them."""
        config = json.loads(json.dumps(self.config))
        # Counted over every process: while the model loads, no sequence-parallel groups exist yet.
        processes = current_processes().world_size
        filled = {
            "train_micro_batch_size_per_gpu": options.per_device_train_batch_size,
            "gradient_accumulation_steps": options.gradient_accumulation_steps,
            "gradient_clipping": options.max_grad_norm,
        }
        filled["train_batch_size"] = (
            filled["train_micro_batch_size_per_gpu"] * filled["gradient_accumulation_steps"] * processes
        )
        for key, value in filled.items():
            if config.get(key) == "auto":
                config[key] = value
        for precision, on in (("bf16", bf16), ("fp16", False)):  # omni never trains in float16
            if config.get(precision, {}).get("enabled") == "auto":
                config[precision]["enabled"] = on
        config["zero_optimization"] = {k: v for k, v in self.zero.items() if v != "auto"}
        return config

    def sequence_parallel_size(self) -> int:
        return self.options.sequence_parallel_size

    def check(self, options: Any, *, tuner: str) -> None:
        self._check_sequence_parallel(options)
        if self.stage == 3 and (options.quant_method or options.quant_bits):
            raise OmniError("--deepspeed ZeRO-3 cannot partition quantized weights: use zero2 for QLoRA")
        if self.stage == 3 and not self.zero.get("stage3_gather_16bit_weights_on_model_save"):
            raise OmniError(
                f"--deepspeed {self.options.deepspeed}: stage3_gather_16bit_weights_on_model_save is false, so the "
                "final weights could not be saved whole; set it to true"
            )

    def _check_sequence_parallel(self, options: Any) -> None:
        size = self.options.sequence_parallel_size
        if size < 1:
            raise OmniError(f"--sequence-parallel-size {size}: must be at least 1")
        if size == 1:
            return
        # One of the run's processes, or the command that is about to start them.
        processes = current_processes().world_size
        if processes == 1:
            asked = options.resolved(os.environ)
            processes = asked.nproc_per_node * asked.nnodes
        if processes % size:
            raise OmniError(
                f"--sequence-parallel-size {size} does not divide the run's {processes} processes: each row is split "
                f"across {size} of them, so use a multiple of {size} processes (--nproc-per-node)"
            )
        if options.attn_impl not in ULYSSES_ATTENTION:
            raise OmniError(
                f"--attn-impl {options.attn_impl} cannot run with --sequence-parallel-size: Ulysses splits the heads "
                f"of {', '.join(ULYSSES_ATTENTION)} attention only"
            )
        if (options.padding_free or options.packing) and not (options.attn_impl.startswith("flash") and _on_gpu()):
            raise OmniError(
                "--padding-free and --packing with --sequence-parallel-size need flash attention on a GPU "
                "(--attn-impl flash_attention_2): Ulysses runs sdpa causally over the whole row, so the sequences "
                "packed into it would attend to each other"
            )

    def training_arguments(self, options: Any, *, model: Any, model_spec: Any) -> dict[str, Any]:
        config = json.loads(json.dumps(self.config))  # the Trainer fills in "auto" values in place
        if not _on_gpu():
            for key in ("offload_optimizer", "offload_param"):
                if isinstance(config["zero_optimization"].get(key), dict):
                    config["zero_optimization"][key]["pin_memory"] = False  # pinning needs a CUDA device
        arguments: dict[str, Any] = {"deepspeed": config}
        if self.options.sequence_parallel_size > 1:
            arguments["parallelism_config"] = _ulysses(self.options.sequence_parallel_size, model)
        return arguments

    def prepare_trainer(self, trainer: Any) -> None:
        if self.options.sequence_parallel_size > 1:
            _start_communication()  # Ulysses' groups are made before accelerate would start it
            trainer.add_callback(_ulysses_in_decoder_only(trainer.model))


def _ulysses_in_decoder_only(model: Any) -> Any:
    """A callback that keeps Ulysses to the attention of `model`'s language model (`get_decoder()`).

    DeepSpeed puts Ulysses in place of the attention kernel itself (transformers' ``ALL_ATTENTION_FUNCTIONS``) when
    the Trainer prepares the model, so every attention of the model would exchange its sequence between processes.
    The image and audio towers of a multimodal model run on whole rows on every process (their features are cut
    with the row before the decoder, `omni.train.trainer.split_decoder_inputs`): their attention must stay the
    plain kernel. Once training begins (Ulysses in place), attention inside the decoder goes through Ulysses and
    any other through the kernel it wraps.
    """
    from transformers import TrainerCallback
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    implementation = model.config._attn_implementation
    kernel = ALL_ATTENTION_FUNCTIONS[implementation]
    in_decoder = {id(module) for module in model.get_decoder().modules()}

    class UlyssesInDecoderOnly(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ulysses = ALL_ATTENTION_FUNCTIONS[implementation]
            if ulysses is kernel:
                return

            def attention(module: Any, *args: Any, **kwargs: Any) -> Any:
                return (ulysses if id(module) in in_decoder else kernel)(module, *args, **kwargs)

            ALL_ATTENTION_FUNCTIONS[implementation] = attention

    return UlyssesInDecoderOnly()


def _ulysses(size: int, model: Any) -> Any:
    """accelerate's parallelism config for DeepSpeed Ulysses over `size` processes of each group of rows, with the
    model's attention kernel inside it."""
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.utils import DeepSpeedSequenceParallelConfig

    handler = DeepSpeedSequenceParallelConfig(
        sp_seq_length_is_variable=True, sp_attn_implementation=model.config._attn_implementation
    )
    # The groups of processes that train on different rows; accelerate sizes DeepSpeed's global batch by them.
    groups = current_processes().world_size // size
    return ParallelismConfig(sp_backend="deepspeed", sp_size=size, dp_replicate_size=groups, sp_handler=handler)


def _start_communication() -> None:
    """Start DeepSpeed's communication (and put this process on its GPU) if it has not started yet: accelerate
    starts it only when the Trainer is built, and only on GPUs."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if deepspeed.comm.is_initialized():
        return
    if _on_gpu():
        get_accelerator().set_device(current_processes().local_rank)
    deepspeed.init_distributed(dist_backend="nccl" if _on_gpu() else "gloo")


def _trains_in_bf16(torch_dtype: str, model_config: Any) -> bool:
    """Whether the Trainer will train under bf16, as `omni.train.trainer.training_arguments` decides once the model
    is loaded: bfloat16 weights on a GPU (`--torch-dtype auto` keeps the checkpoint's dtype there)."""
    dtype = str(getattr(model_config, "dtype", None) or "") if torch_dtype == "auto" else torch_dtype
    return _on_gpu() and dtype.endswith("bfloat16")


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _on(offload: Any) -> bool:
    return isinstance(offload, dict) and offload.get("device", "none") != "none"
