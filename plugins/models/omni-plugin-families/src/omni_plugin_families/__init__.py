"""omni-plugin-families: model families registered from one table (`omni_plugin_families.table.FAMILIES`).

Each family is a `ModelSpec`: how omni recognises its checkpoints (architectures, model types, hub ids), its
template, its LoRA targets and, for vision-language families, the parts the `--freeze-*` flags name. None needs
code of its own: text families load through `omni.api:load_pretrained` and encode with the tokenizer's published
chat template (`default`); vision-language families load through `omni.api:load_image_text_to_text` and encode
with the processor's own chat template and call (`multimodal`). Registering imports nothing heavy.
"""

from __future__ import annotations

from omni.api import hookimpl

from omni_plugin_families.table import FAMILIES

OMNI_PLUGIN_API = "1.2"


@hookimpl
def register_models(register):
    for spec in FAMILIES:
        register(spec)
