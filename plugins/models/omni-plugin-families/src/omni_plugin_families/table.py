"""The families this plugin registers, one `ModelSpec` each, built by `text_family` and `vision_language_family`.

A row says how omni recognises the family's checkpoints and what differs between families: LoRA targets
(the module names of transformers' implementation) and, for vision-language families, the module prefixes of
the parts the `--freeze-vit`/`--freeze-aligner`/`--freeze-llm` flags act on. Everything else is shared: text
families load with `load_pretrained` and encode with the tokenizer's published chat template (`default`);
vision-language ones load with `load_image_text_to_text` and encode with the processor's chat template and
call (`multimodal`), whose ids equal the processor's own. Pure data: imported whenever plugins load.
"""

from __future__ import annotations

from omni.api import ModelParts, ModelSpec

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
# Phi-3 and GLM fuse projections into one Linear layer (qkv_proj, gate_up_proj).
FUSED_MLP = ("gate_up_proj", "down_proj")
# Multi-head latent attention (DeepSeek V2/V3): queries low-rank (q_a/q_b) or plain (q_proj in the Lite models).
LATENT_ATTENTION = ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
# Mixture-of-experts models keep their experts as fused 3-D weights, not Linear layers LoRA can wrap; their
# attention (and any dense MLP layers) is what LoRA adapts by default.


def text_family(
    name: str,
    description: str,
    *,
    architectures: tuple[str, ...] = (),
    model_types: tuple[str, ...] = (),
    hub_ids: tuple[str, ...],
    lora_targets: tuple[str, ...],
    template: str = "default",
) -> ModelSpec:
    """A text family: transformers' causal-LM class, the tokenizer's own chat template unless `template` names
    one of this plugin's."""
    return ModelSpec(
        name=name,
        description=description,
        impl="omni.api:load_pretrained",
        architectures=architectures,
        model_types=model_types,
        hub_ids=hub_ids,
        template=template,
        lora_targets=lora_targets,
    )


def vision_language_family(
    name: str,
    description: str,
    *,
    architectures: tuple[str, ...],
    model_types: tuple[str, ...],
    hub_ids: tuple[str, ...],
    vision: tuple[str, ...],
    aligner: tuple[str, ...],
    llm: tuple[str, ...] = ("model.language_model", "lm_head"),
) -> ModelSpec:
    """An image-text-to-text family: transformers' class and processor, the processor's own chat template.

    LoRA targets are left to the tuner's default for multimodal families: every Linear layer of `llm`.
    """
    return ModelSpec(
        name=name,
        description=description,
        impl="omni.api:load_image_text_to_text",
        architectures=architectures,
        model_types=model_types,
        hub_ids=hub_ids,
        template="multimodal",
        modalities=("text", "image"),
        parts=ModelParts(llm=llm, vision=vision, aligner=aligner),
    )


# transformers' LLaVA-style classes: model.vision_tower -> model.multi_modal_projector -> model.language_model.
TOWER, PROJECTOR = ("model.vision_tower",), ("model.multi_modal_projector",)

FAMILIES: tuple[ModelSpec, ...] = (
    text_family(
        "gemma2",
        "Gemma 2 instruct and base models (2B, 9B, 27B)",
        architectures=("Gemma2ForCausalLM",),
        model_types=("gemma2",),
        hub_ids=("google/gemma-2-*",),
        lora_targets=(*ATTENTION, *MLP),
    ),
    text_family(
        "gemma3-text",
        "Gemma 3 text-only models (270M, 1B)",
        architectures=("Gemma3ForCausalLM",),
        model_types=("gemma3_text",),
        hub_ids=("google/gemma-3-270m*", "google/gemma-3-1b-*"),
        lora_targets=(*ATTENTION, *MLP),
    ),
    vision_language_family(
        "gemma3",
        "Gemma 3 vision-language models (4B, 12B, 27B): SigLIP tower, pooled projector, Gemma 3",
        architectures=("Gemma3ForConditionalGeneration",),
        model_types=("gemma3",),
        hub_ids=("google/gemma-3-4b-*", "google/gemma-3-12b-*", "google/gemma-3-27b-*"),
        vision=TOWER,
        aligner=PROJECTOR,
    ),
    text_family(
        "mistral",
        "Mistral 7B, Mistral-Nemo, Ministral, Mistral-Small 3 text (MistralForCausalLM)",
        architectures=("MistralForCausalLM",),
        model_types=("mistral",),
        hub_ids=(
            "mistralai/Mistral-7B-*",
            "mistralai/Mistral-Nemo-*",
            "mistralai/Ministral-8B-*",
            "mistralai/Mistral-Small-24B-*",
        ),
        lora_targets=(*ATTENTION, *MLP),
    ),  # fmt: skip
    text_family(
        "mixtral",
        "Mixtral mixture-of-experts models (8x7B, 8x22B)",
        architectures=("MixtralForCausalLM",),
        model_types=("mixtral",),
        hub_ids=("mistralai/Mixtral-*",),
        lora_targets=ATTENTION,
    ),
    vision_language_family(
        "mistral3",
        "Mistral-Small 3.1 / 3.2 with images: Pixtral tower, patch merger, Mistral",
        architectures=("Mistral3ForConditionalGeneration",),
        model_types=("mistral3",),
        hub_ids=("mistralai/Mistral-Small-3.1-*", "mistralai/Mistral-Small-3.2-*"),
        vision=TOWER,
        aligner=PROJECTOR,
    ),
    vision_language_family(
        "pixtral",
        "Pixtral 12B in transformers' LLaVA layout (mistral-community/pixtral-12b)",
        architectures=(),  # LlavaForConditionalGeneration: the generic image-text-to-text family's by config
        model_types=(),
        hub_ids=("mistral-community/pixtral-*",),
        vision=TOWER,
        aligner=PROJECTOR,
    ),
    text_family(
        "phi3",
        "Phi-3, Phi-3.5 mini/medium, Phi-4 and Phi-4-mini (Phi3ForCausalLM: fused qkv and gate/up projections)",
        architectures=("Phi3ForCausalLM",),
        model_types=("phi3",),
        hub_ids=("microsoft/Phi-3-*", "microsoft/Phi-3.5-mini-*", "microsoft/phi-4", "microsoft/Phi-4-mini-*"),
        lora_targets=("qkv_proj", "o_proj", *FUSED_MLP),
    ),
    text_family(
        "phimoe",
        "Phi-3.5-MoE",
        architectures=("PhiMoEForCausalLM", "PhimoeForCausalLM"),  # the published name, transformers 5's
        model_types=("phimoe",),
        hub_ids=("microsoft/Phi-3.5-MoE-*",),
        lora_targets=ATTENTION,
    ),
    text_family(
        "deepseek-v2",
        "DeepSeek-V2, V2-Lite and DeepSeek-Coder-V2 (latent attention, mixture of experts)",
        architectures=("DeepseekV2ForCausalLM",),
        model_types=("deepseek_v2",),
        hub_ids=("deepseek-ai/DeepSeek-V2*", "deepseek-ai/DeepSeek-Coder-V2-*"),
        lora_targets=(*LATENT_ATTENTION, *MLP),
    ),
    text_family(
        "deepseek-v3",
        "DeepSeek-V3 and DeepSeek-R1 (latent attention, mixture of experts)",
        architectures=("DeepseekV3ForCausalLM",),
        model_types=("deepseek_v3",),
        hub_ids=("deepseek-ai/DeepSeek-V3*", "deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-R1-0*"),
        lora_targets=(*LATENT_ATTENTION, *MLP),
    ),
    # The R1 distills are Qwen2.5 and Llama checkpoints with DeepSeek's chat template: matched by hub id only
    # (a local folder of one says Qwen2ForCausalLM; pass --model-type deepseek-r1-distill for it).
    text_family(
        "deepseek-r1-distill",
        "DeepSeek-R1 distilled into Qwen2.5 and Llama 3 (their architectures, DeepSeek's chat template)",
        hub_ids=("deepseek-ai/DeepSeek-R1-Distill-*",),
        lora_targets=(*ATTENTION, *MLP),
    ),
    # Qwen2.5-Math's published template differs from Qwen2.5's (its default system prompt asks for step-by-step
    # reasoning and a boxed answer): its hub ids keep the tokenizer's own template rather than the qwen2.5 family's.
    # A local copy says Qwen2ForCausalLM; pass --model-type qwen2.5-math for it.
    text_family(
        "qwen2.5-math",
        "Qwen2.5-Math instruct models (Qwen2.5 architecture, their own default system prompt)",
        hub_ids=("Qwen/Qwen2.5-Math-*",),
        lora_targets=(*ATTENTION, *MLP),
    ),
    text_family(
        "glm4",
        "GLM-4-0414 models (9B, 32B, Z1 reasoning)",
        architectures=("Glm4ForCausalLM",),
        model_types=("glm4",),
        hub_ids=("THUDM/GLM-4-*-0414", "zai-org/GLM-4-*-0414", "THUDM/GLM-Z1-*", "zai-org/GLM-Z1-*"),
        lora_targets=(*ATTENTION, *FUSED_MLP),
        template="glm4",  # the published template trains no stop token (templates.py)
    ),
    text_family(
        "glm",
        "GLM-4-9B chat in transformers' port (THUDM/glm-4-9b-chat-hf)",
        architectures=("GlmForCausalLM",),
        model_types=("glm",),
        hub_ids=("THUDM/glm-4-9b*-hf", "zai-org/glm-4-9b*-hf"),
        lora_targets=(*ATTENTION, *FUSED_MLP),
        template="glm4",
    ),
    text_family(
        "glm4-moe",
        "GLM-4.5, GLM-4.5-Air and GLM-4.6 (mixture of experts)",
        architectures=("Glm4MoeForCausalLM",),
        model_types=("glm4_moe",),
        hub_ids=("zai-org/GLM-4.5*", "zai-org/GLM-4.6*"),
        lora_targets=ATTENTION,
        template="glm4-moe",  # the published template trains no stop token (templates.py)
    ),
    vision_language_family(
        "llava-onevision",
        "LLaVA-OneVision (SigLIP tower, projector, Qwen2; any-resolution tiles)",
        architectures=("LlavaOnevisionForConditionalGeneration",),
        model_types=("llava_onevision",),
        hub_ids=("llava-hf/llava-onevision-*",),
        vision=TOWER,
        aligner=(*PROJECTOR, "model.image_newline"),
    ),
    vision_language_family(
        "internvl",
        "InternVL 2.5 / 3 / 3.5 in transformers' port (the -hf checkpoints)",
        architectures=("InternVLForConditionalGeneration",),
        model_types=("internvl",),
        hub_ids=("OpenGVLab/InternVL*-hf", "OpenGVLab/InternVL*-HF"),
        vision=TOWER,
        aligner=PROJECTOR,
    ),
    vision_language_family(
        "idefics3",
        "Idefics3 and SmolVLM / SmolVLM2 (SigLIP tower, pixel-shuffle connector, Llama / SmolLM2)",
        architectures=("Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration"),
        model_types=("idefics3", "smolvlm"),
        hub_ids=("HuggingFaceM4/Idefics3-*", "HuggingFaceTB/SmolVLM-*", "HuggingFaceTB/SmolVLM2-*"),
        vision=("model.vision_model",),
        aligner=("model.connector",),
        llm=("model.text_model", "lm_head"),
    ),
    vision_language_family(
        "mllama",
        "Llama 3.2 Vision (Mllama: vision encoder, projector, cross-attention layers in the Llama)",
        architectures=("MllamaForConditionalGeneration",),
        model_types=("mllama",),
        hub_ids=("meta-llama/Llama-3.2-*-Vision*",),
        vision=("model.vision_model",),
        aligner=PROJECTOR,
    ),
    # Qwen2-VL and Qwen2.5-VL checkpoints are the generic image-text-to-text family's by their config; this row
    # only claims their hub ids, which Qwen2/Qwen2.5 text patterns ("Qwen/Qwen2.5-*") would otherwise take.
    vision_language_family(
        "qwen2-vl",
        "Qwen2-VL and Qwen2.5-VL hub models (vision tower with a patch merger, Qwen2)",
        architectures=(),
        model_types=(),
        hub_ids=("Qwen/Qwen2-VL-*", "Qwen/Qwen2.5-VL-*"),
        vision=("model.visual",),
        aligner=("model.visual.merger",),
    ),
    vision_language_family(
        "qwen3-vl",
        "Qwen3-VL dense and MoE (vision tower with DeepStack mergers, Qwen3)",
        architectures=("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"),
        model_types=("qwen3_vl", "qwen3_vl_moe"),
        hub_ids=("Qwen/Qwen3-VL-*",),
        vision=("model.visual",),
        aligner=("model.visual.merger", "model.visual.deepstack_merger_list"),
    ),
)
