"""Prompts with images, audio or video: their media for the training forward, and log-probs computed with them.

The rollout engine answers a media row from the row itself (it encodes the media as `omni infer` does). The
training forward must see the same media beside the same prompt ids, so the trainer keeps each sample's
modality tensors (from omni's template, encoded again per batch rather than held for the whole dataset) and
scores completions with the model's whole forward: the model merges the media into its embeddings and lays
out its own multimodal rotary positions from the attention mask (prompts left-padded, completions
right-padded), exactly as for an unpadded sequence. Per-token inputs (token types, Mllama's cross-attention
mask) are laid out over the padded sequence here, the way generation extends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from omni.api import TOKEN_AXIS_KEYS, TOKEN_TYPE_KEYS, OmniError, Template, merge_extras

MEDIA = "omni_media"  # the generation batch's per-sample media (a list, which TRL shuffles and splits in step)


class PromptMedia:
    """Each row's prompt media as omni's template encodes them (tensors, plus flags such as
    ``use_audio_in_video``); a row without media has none."""

    def __init__(self, template: Template, rows: Sequence[dict[str, Any]]) -> None:
        self.template = template
        self.rows = rows

    def for_rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """One media dict per index; a row repeated in the batch (a group) is encoded once and shared."""
        encoded: dict[int, dict[str, Any]] = {}
        for i in indices:
            if i not in encoded:
                encoded[i] = dict(self.template.encode_prompt(self.rows[i]).extras)
        return [encoded[i] for i in indices]


def model_inputs(
    media: Sequence[dict[str, Any]], device: torch.device, *, prompt_width: int, width: int
) -> dict[str, Any]:
    """The media of consecutive samples as one batch's model keyword arguments for sequences of `width` tokens
    whose left-padded prompts take the first `prompt_width`: tensors joined in sample order (the model pairs them
    with placeholder tokens in that order), per-token inputs laid out by `_over_sequences`, flags passed once."""
    flags = {k: v for m in media for k, v in m.items() if not isinstance(v, torch.Tensor)}
    tensors = [{k: v for k, v in m.items() if isinstance(v, torch.Tensor)} for m in media]
    per_token = (*TOKEN_TYPE_KEYS, *TOKEN_AXIS_KEYS)
    merged = merge_extras(tensors, skip=set(per_token))
    for key in per_token:
        if not any(key in t for t in tensors):
            continue
        if key in TOKEN_AXIS_KEYS and not all(key in t for t in tensors):
            raise OmniError(
                f"a batch mixes prompts with and without images, and this model's {key} needs images in every "
                "prompt of a batch; give every prompt an image"
            )
        # A text-only prompt has no token types: all zeros (text), as the left padding gets.
        rows = [t.get(key, torch.zeros((1, 0), dtype=torch.long)) for t in tensors]
        merged[key] = _over_sequences(rows, prompt_width, width, carry_last_row=key in TOKEN_AXIS_KEYS)
    return {**flags, **{k: v.to(device) for k, v in merged.items()}}


def _over_sequences(
    prompts: Sequence[torch.Tensor], prompt_width: int, width: int, *, carry_last_row: bool
) -> torch.Tensor:
    """Each prompt's per-token input (1, prompt length, ...) over its whole sequence, later axes zero-padded to the
    batch's largest: zeros on the left padding, and at the completion's tokens zeros (token types: the completion is
    text) or, with `carry_last_row`, the prompt's last row (a written token sees the images the prompt's last token
    sees, as Mllama's generation extends its cross-attention mask)."""
    trailing = [max(p.shape[d] for p in prompts) for d in range(2, prompts[0].dim())]
    out = prompts[0].new_zeros((len(prompts), width, *trailing))
    for i, prompt in enumerate(prompts):
        prompt = prompt[0]
        if len(prompt) > prompt_width:
            raise OmniError(f"a prompt's {len(prompt)}-token media input is longer than its {prompt_width} tokens")
        region = tuple(slice(0, n) for n in prompt.shape[1:])
        out[(i, slice(prompt_width - len(prompt), prompt_width), *region)] = prompt
        if carry_last_row:
            out[(i, slice(prompt_width, width), *region)] = prompt[-1]
    return out


def whole_forward_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    media: Sequence[dict[str, Any]],
    *,
    temperature: float,
    batch_size: int,
    compute_entropy: bool,
    compute_aux_loss: bool,
    autocast: Any,
    media_tokens: frozenset[int] = frozenset(),
    pad_token_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per-token log-probs (and entropies, MoE aux loss) of the last `logits_to_keep` tokens, as TRL's
    `_get_per_token_logps_and_entropies` returns them, from the model's logits at `temperature`.

    Used where TRL's fused LM head cannot serve: the media are merged inside the model's own forward (and a
    model such as Qwen3-Omni's thinker has no separable backbone for the fused head to call). A media token
    a completion ends with (see `EngineRollout`) is scored as sampled but fed to the model as `pad_token_id`,
    so the model does not look for media the prompt lacks.
    """
    fed = input_ids
    if media_tokens:
        completion = input_ids[:, -logits_to_keep:]
        sampled_media = torch.isin(completion, torch.tensor(sorted(media_tokens), device=input_ids.device))
        if sampled_media.any():
            fed = input_ids.clone()
            fed[:, -logits_to_keep:] = completion.masked_fill(sampled_media, pad_token_id)
    logps, entropies, aux = [], [], []
    width = input_ids.size(1)
    prompt_width = width - logits_to_keep
    for start in range(0, input_ids.size(0), batch_size):
        end = min(start + batch_size, input_ids.size(0))
        mask = attention_mask[start:end]
        inputs = {"input_ids": fed[start:end], "attention_mask": mask}
        inputs.update(model_inputs(media[start:end], input_ids.device, prompt_width=prompt_width, width=width))
        if compute_aux_loss:
            inputs["output_router_logits"] = True
        with autocast():
            outputs = model(**inputs, use_cache=False)
        # Logits at position t predict token t + 1: the completion's tokens are predicted one position earlier.
        logits = outputs.logits[:, -logits_to_keep - 1 : -1].float() / temperature
        token_logps = logits.log_softmax(-1)
        targets = input_ids[start:end, -logits_to_keep:]
        keep = mask[:, -logits_to_keep:].bool()
        logps.append(token_logps.gather(-1, targets[..., None])[..., 0].masked_fill(~keep, 0))
        if compute_entropy:
            entropies.append((-(token_logps.exp() * token_logps).sum(-1)).masked_fill(~keep, 0))
        if compute_aux_loss:
            aux.append(outputs.aux_loss)
    return (
        torch.cat(logps),
        torch.cat(entropies) if compute_entropy else None,
        torch.stack(aux).mean() if compute_aux_loss else None,
    )


def needs_whole_forward(model: Any) -> bool:
    """Whether TRL's fused LM head cannot run `model`: it calls the model's backbone for hidden states, and
    a model that is its own base model (Qwen3-Omni's thinker) has none to call."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "base_model", None) is base
