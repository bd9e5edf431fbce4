"""Flags of the `lora` tuner (light: no peft import). ms-swift spellings are aliases."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import option


@dataclass
class LoraOptions:
    """LoRA and its variants, as `omni sft --tuner lora` flags."""

    lora_rank: int = option(8, help="rank r of the low-rank update")
    lora_alpha: int = option(
        32, help="scaling numerator: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA)"
    )
    lora_dropout: float = option(0.05, help="dropout on the adapter's input")
    target_modules: list[str] = option(
        default_factory=list,
        help="module names or a regex to adapt (default: the model family's LoRA targets, else all-linear; on a "
        "multimodal model both stay in the language model, and --freeze-vision/-audio/-aligner false add a part)",
    )
    modules_to_save: list[str] = option(
        default_factory=list, help="modules trained in full and saved with the adapter (e.g. lm_head embed_tokens)"
    )
    use_dora: bool = option(False, help="DoRA: decompose weights into magnitude and direction")
    use_rslora: bool = option(False, help="rank-stabilised LoRA: scale by alpha / sqrt(r)")
    lora_plus_lr_ratio: float | None = option(
        None,
        help="LoRA+: the B matrices learn this many times faster than the A matrices (e.g. 16)",
        aliases=("lorap_lr_ratio",),
    )
    init_weights: str = option(
        "true", help="adapter init: true (B=0), gaussian, pissa, pissa_niter_N, olora", aliases=("init_lora_weights",)
    )
