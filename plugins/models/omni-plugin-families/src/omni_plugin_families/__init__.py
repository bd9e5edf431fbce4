"""omni-plugin-families: model families registered from one table (`omni_plugin_families.table.FAMILIES`).

Each family is a `ModelSpec`: how omni recognises its checkpoints (architectures, model types, hub ids), its
template, its LoRA targets and, for vision-language families, the parts the `--freeze-*` flags name. Text families load
through `omni.api:load_pretrained` and encode with the tokenizer's published chat template (`default`), except
GLM-4, GLM-4.5 and GLM-4.6, whose published templates train no stop token (`glm4`, `glm4-moe`, in
templates.py); vision-language families
load through `omni.api:load_image_text_to_text` and encode with the processor's own chat template and call
(`multimodal`). Registering imports nothing heavy.
"""

from __future__ import annotations

from omni.api import TemplateSpec, hookimpl

from omni_plugin_families.table import FAMILIES

OMNI_PLUGIN_API = "1.2"


@hookimpl
def register_models(register):
    for spec in FAMILIES:
        register(spec)


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="glm4",
            description="GLM-4-0414 / GLM-4-9B chat: the published turns, <|user|> trained as the stop",
            impl="omni_plugin_families.templates:Glm4Template",
        )
    )
    register(
        TemplateSpec(
            name="glm4-moe",
            description="GLM-4.5 / GLM-4.6: the published turns, the <think></think> scaffold as prompt, <|user|> trained as the stop",
            impl="omni_plugin_families.templates:Glm4MoeTemplate",
        )
    )
