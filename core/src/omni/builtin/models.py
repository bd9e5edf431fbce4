"""Built-in models plugin: the generic causal LM, the `pt` engine, and the `infer` and `export` commands."""

from __future__ import annotations

from omni import hookimpl
from omni.export.options import ExportOptions
from omni.infer.options import InferOptions, PtEngineOptions
from omni.models.multimodal import VISION_LANGUAGE_PARTS
from omni.models.resolve import GENERIC_MODEL, GENERIC_VISION_LANGUAGE_MODEL
from omni.registry import CommandSpec, EngineSpec, ModelSpec, Selector


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name=GENERIC_MODEL,
            description="any transformers causal LM with a chat template; used when no model plugin claims a checkpoint",
            impl="omni.models.loader:load_pretrained",
        )
    )
    register(
        ModelSpec(
            name=GENERIC_VISION_LANGUAGE_MODEL,
            description="any transformers image-text-to-text model whose processor has a chat template "
            "(Qwen2-VL, Qwen2.5-VL, LLaVA ...); used for checkpoints with a vision tower no model plugin claims",
            impl="omni.models.multimodal:load_image_text_to_text",
            template="multimodal",
            modalities=("text", "image"),
            parts=VISION_LANGUAGE_PARTS,
        )
    )


@hookimpl
def register_engines(register):
    register(
        EngineSpec(
            name="pt",
            description="PyTorch with transformers generate: any model, batched, streaming, per-request adapters",
            impl="omni.infer.pt_engine:PtEngine",
            options=PtEngineOptions,
        )
    )


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="infer",
            description="chat with a model, answer one --query, or answer a file of rows (--input/--output)",
            impl="omni.infer.command:run",
            options=InferOptions,
            selects=(Selector("infer_backend", "engines"),),
        )
    )
    register(
        CommandSpec(
            name="export",
            description="merge a trained adapter into its base model (--merge-lora) and/or quantize it (--quant-method)",
            impl="omni.export.command:run",
            options=ExportOptions,
            selects=(Selector("quant_method", "quantizers"),),
        )
    )
