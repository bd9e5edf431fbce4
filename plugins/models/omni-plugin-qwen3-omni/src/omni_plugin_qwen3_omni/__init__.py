"""omni-plugin-qwen3-omni: Qwen3-Omni (`Qwen3OmniMoeForConditionalGeneration`) for training and inference.

The thinker trains on text, images, audio and video; when the checkpoint has a talker, `omni infer --speak`
writes the spoken answer. Registering imports nothing heavy: the loader, processor and template load on use.
"""

from __future__ import annotations

from omni.api import ModelParts, ModelSpec, TemplateSpec, hookimpl

OMNI_PLUGIN_API = 1

# Module prefixes of the thinker (what the loader returns), for --freeze-llm/-vision/-audio/-aligner.
THINKER_PARTS = ModelParts(
    llm=("model", "lm_head"),
    vision=("visual",),
    audio=("audio_tower",),
    # The vision mergers (the deepstack ones too) and the audio tower's output projections.
    aligner=("visual.merger", "visual.merger_list", "audio_tower.proj1", "audio_tower.proj2"),
)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="qwen3-omni",
            description="Qwen3-Omni (30B-A3B): text, image, audio and video in; text, and speech with the talker, out",
            impl="omni_plugin_qwen3_omni.loader:load",
            architectures=("Qwen3OmniMoeForConditionalGeneration", "Qwen3OmniMoeThinkerForConditionalGeneration"),
            model_types=("qwen3_omni_moe", "qwen3_omni_moe_thinker"),
            hub_ids=("Qwen/Qwen3-Omni-*",),
            template="qwen3-omni",
            # Attention only: the experts are fused 3-D weights, not Linear layers LoRA can wrap. The towers
            # have q_proj ... too; `parts` keeps the default LoRA on the language model.
            lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"),
            modalities=("text", "image", "audio", "video"),
            parts=THINKER_PARTS,
        )
    )


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="qwen3-omni",
            description="Qwen3-Omni: Qwen3's chat format; <image>, <audio>, <video> become the processor's placeholders",
            impl="omni_plugin_qwen3_omni.template:Qwen3OmniTemplate",
        )
    )
