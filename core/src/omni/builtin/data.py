"""Built-in data plugin: the `default` and `multimodal` chat templates and the `omni template` command."""

from __future__ import annotations

from omni import hookimpl
from omni.registry import CommandSpec, TemplateSpec
from omni.template.render_options import TemplateRenderOptions


@hookimpl
def register_templates(register):
    register(
        TemplateSpec(
            name="default",
            description="the tokenizer's own Jinja chat template, with exact masks on the assistant answers",
            impl="omni.template.default:DefaultTemplate",
        )
    )
    register(
        TemplateSpec(
            name="multimodal",
            description="a vision-language processor's own chat template and call: images expanded into their "
            "tokens by the processor, exact masks on the answers",
            impl="omni.template.multimodal:MultimodalTemplate",
        )
    )


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="template",
            description="show how a template encodes a dataset row: tokens, with the trained ones marked",
            impl="omni.template.render_cmd:run",
            options=TemplateRenderOptions,
            includes=("datasets",),  # a dataset plugin's options shape its rows here as in training
        )
    )
