"""The prompt side of an engine that runs outside transformers (vLLM, SGLang, LMDeploy).

Such engines are handed token ids built by omni's own template, exactly as the `pt` engine builds them,
so every engine answers the same prompt; their own chat templates are never applied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omni.infer.engine import GenerationConfig, InferRequest
from omni.models.options import ModelOptions
from omni.models.resolve import resolve_model
from omni.template.base import Template
from omni.template.options import TemplateCliOptions

if TYPE_CHECKING:
    from omni.registry import Registry


@dataclass
class PromptEncoder:
    """A model's processor, tokenizer and omni template, loaded without the weights."""

    path: str  # the local folder or hub id the engine loads
    processor: Any
    tokenizer: Any
    template: Template
    end_token_ids: set[int]  # where an answer ends: the generation config's end-of-sequence ids, and padding

    @classmethod
    def load(
        cls,
        model: str,
        model_options: ModelOptions | None = None,
        template_options: TemplateCliOptions | None = None,
        *,
        registry: Registry,
    ) -> PromptEncoder:
        """Resolve `model` as the `pt` engine does (names, aliases, the embedded default) and load its prompt side;
        models and templates are looked up in `registry` (an engine passes its own)."""
        from transformers import AutoProcessor, GenerationConfig

        from omni.template import get_template

        flags = dataclasses.replace(model_options, model=model) if model_options else ModelOptions(model=model)
        resolved = resolve_model(flags.model, registry, model_type=flags.model_type, use_hf=flags.use_hf)
        path = str(resolved.path_or_id)
        processor = AutoProcessor.from_pretrained(path)
        tokenizer = getattr(processor, "tokenizer", processor)
        chat = template_options or TemplateCliOptions()
        template = get_template(
            chat.template, processor, chat.template_options(), model_spec=resolved.spec, registry=registry
        )
        try:
            generation_config = GenerationConfig.from_pretrained(path)
        except OSError:  # checkpoints without generation_config.json
            generation_config = GenerationConfig()
        return cls(path, processor, tokenizer, template, _end_token_ids(generation_config, tokenizer))

    def token_ids(self, request: InferRequest) -> list[int]:
        """The prompt's ids: the template's for a conversation, the tokenizer's for a raw prompt, or the request's own."""
        if request.prompt_ids is not None:
            return list(request.prompt_ids)
        if request.prompt is not None:
            return list(self.tokenizer(request.prompt)["input_ids"])
        return list(self.template.encode_prompt(request.row).input_ids)

    def stop_strings(self, config: GenerationConfig) -> list[str]:
        """The request's stop strings and the template's, in order, without repeats."""
        return list(dict.fromkeys([*config.stop, *self.template.stop_words]))

    def cut_at_end(self, ids: list[int]) -> list[int]:
        """Tokens before the first end-of-sequence token (engines report the token they stopped at)."""
        return ids[: next((i for i, t in enumerate(ids) if t in self.end_token_ids), len(ids))]


def _end_token_ids(generation_config: Any, tokenizer: Any) -> set[int]:
    """The ids the `pt` engine ends an answer at: the generation config's end-of-sequence ids and padding."""
    eos = generation_config.eos_token_id
    ends = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if not ends and tokenizer.eos_token_id is not None:
        ends.add(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        ends.add(tokenizer.pad_token_id)
    return ends
