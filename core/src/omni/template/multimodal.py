"""The `multimodal` template: a vision-language processor's own chat template and call, with exact answer masks.

Conversations are rendered by ``processor.apply_chat_template`` (each ``<image>`` tag of a row becomes an
image content part, so the template writes the family's image placeholder), answers are found as the
`default` template finds them, and the processor itself loads the pixels and expands each placeholder into
its image tokens. Its replacement offsets map every token back to the rendered text, so labels cover
exactly the answers and the ids equal ``processor.apply_chat_template(..., tokenize=True)``'s.
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from omni.data.convert import MEDIA_TAG, media_tags, tagged_row
from omni.data.rows import row_error
from omni.encoders.image import load_image
from omni.encoders.sources import MediaContext
from omni.template.base import TOKEN_TYPE_KEYS, Encoded, RowTooLongError, TemplateError
from omni.template.default import DefaultTemplate

_IMAGE_TOKENS, _TOKEN_TYPE_KEY = "_image_tokens", "_token_type_key"  # passed from `tokenize` to `_checked`
_NOT_MEDIA = {"input_ids", "attention_mask", "offset_mapping", "text_replacement_offsets", *TOKEN_TYPE_KEYS}


class MultimodalTemplate(DefaultTemplate):
    """Rows with images for a transformers vision-language processor (any `AutoProcessor` with a chat template).

    `encode` and `encode_prompt` extras: the processor's image tensors (``pixel_values``, ``image_grid_thw``,
    ``pixel_attention_mask`` ... as the family names them) and, where the processor gives one, each token's
    modality (``mm_token_type_ids`` or ``token_type_ids``, shape (1, length)).
    """

    def encode(self, row: dict[str, Any]) -> Encoded:
        return self._checked(super().encode(tagged_row(row)), row)

    def encode_prompt(self, row: dict[str, Any]) -> Encoded:
        return self._checked(super().encode_prompt(tagged_row(row)), row)

    def _render(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool, tools: list[dict[str, Any]] | None = None
    ) -> str:
        if not getattr(self.processor, "chat_template", None) or not hasattr(self.processor, "image_processor"):
            raise TemplateError(
                "the multimodal template needs the model's processor with a chat template "
                "(processor_config.json or chat_template.jinja beside preprocessor_config.json)"
            )
        kwargs = {} if self.options.enable_thinking is None else {"enable_thinking": self.options.enable_thinking}
        parts = [
            {
                "role": m["role"],
                "content": content_parts(m["content"]),
                **({"tool_calls": m["tool_calls"]} if m.get("tool_calls") else {}),
            }
            for m in messages
        ]
        return str(
            self.processor.apply_chat_template(
                parts, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs
            )
        )

    def tokenize(self, text: str, row: dict[str, Any]) -> tuple[list[int], list[tuple[int, int]], dict[str, Any]]:
        """The processor's ids for `text` with the row's images, offsets in `text` (an expanded placeholder's
        tokens all point at the placeholder), and the image tensors."""
        images = self._images(row)
        bos = self.tokenizer.bos_token
        out = self.processor(
            text=[text],
            images=[images] if images else None,
            # As apply_chat_template(tokenize=True) calls it: no second BOS when the template wrote one.
            add_special_tokens=not (bos and text.startswith(bos)),
            return_offsets_mapping=True,
            return_text_replacement_offsets=True,
            return_tensors="pt",
        )
        replaced = (out.get("text_replacement_offsets") or [[]])[0]
        offsets = [
            (_original_offset(start, replaced), _original_offset(end, replaced))
            for start, end in out["offset_mapping"][0].tolist()
        ]
        ids = out["input_ids"][0].tolist()
        extras = {key: value for key, value in out.items() if key not in _NOT_MEDIA}
        if images:  # for `_checked`, which takes them out again
            extras[_IMAGE_TOKENS] = sum(ids.count(i) for i in self._image_token_ids())
            extras[_TOKEN_TYPE_KEY] = next((key for key in TOKEN_TYPE_KEYS if key in out), None)
        return ids, offsets, extras

    def _image_token_ids(self) -> list[int]:
        return [i for i in self.processor.image_token_ids if i is not None]

    def _images(self, row: dict[str, Any]) -> list[Any]:
        tags = media_tags(row)
        listed = list(row.get("images") or [])
        if set(tags) - {"image"}:
            raise row_error(row, "this vision-language model takes images only; remove the <audio>/<video> tags")
        if len(tags) != len(listed):
            raise row_error(row, f"{len(tags)} <image> tag(s) in the messages but {len(listed)} in images")
        context = MediaContext.of_row(row)
        return [load_image(item, context=context) for item in listed]

    def _checked(self, encoded: Encoded, row: dict[str, Any]) -> Encoded:
        """`encoded` once truncation is known to have kept every image token, with each token's modality
        where the processor gives one (computed on the kept ids)."""
        extras = dict(encoded.extras)
        expected, token_type_key = extras.pop(_IMAGE_TOKENS, 0), extras.pop(_TOKEN_TYPE_KEY, None)
        if sum(encoded.input_ids.count(i) for i in self._image_token_ids()) != expected:
            raise row_error(
                row,
                f"--max-length {self.options.max_length} would cut into its images ({expected} image tokens); "
                "raise --max-length",
                RowTooLongError,
            )
        if token_type_key is not None:
            types = self.processor.create_mm_token_type_ids([encoded.input_ids])
            extras[token_type_key] = torch.tensor(types, dtype=torch.long)
        return Encoded(encoded.input_ids, encoded.labels, extras)


def content_parts(content: str) -> list[dict[str, str]]:
    """A message's text with ``<image>`` tags as chat-template content parts (``{"type": "image"}``)."""
    parts: list[dict[str, str]] = []
    cursor = 0
    for match in MEDIA_TAG.finditer(content):
        if match.start() > cursor:
            parts.append({"type": "text", "text": content[cursor : match.start()]})
        parts.append({"type": match.group(1)})
        cursor = match.end()
    if cursor < len(content) or not parts:
        parts.append({"type": "text", "text": content[cursor:]})
    return parts


def _original_offset(expanded: int, replaced: list[dict[str, Any]]) -> int:
    """Where character `expanded` of the processor's expanded text was in the rendered text."""
    new_starts = [r["new_span"][0] for r in replaced]
    at = bisect.bisect_right(new_starts, expanded) - 1
    if at < 0:
        return expanded
    replacement = replaced[at]
    if expanded < replacement["new_span"][1]:
        return replacement["span"][0]
    return expanded - (replacement["new_span"][1] - replacement["span"][1])
