"""``--reward-model PATH``: a trained reward model (any sequence-classification checkpoint with one score, or an
adapter trained by `omni rlhf --algo rm`) scores each prompt + completion as one conversation, rendered with the
reward model's own chat template, the way it was trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omni.api import ModelOptions, OmniError, PromptEncoder, Registry, load_model


def load_scorer(path: str, registry: Registry, flag: str = "--reward-model") -> Any:
    """(model, base path): the reward model at `path` ready to score (a checkpoint as it is, an adapter merged into
    its base), frozen; `flag` names the option it came from in errors."""
    from omni.api import find_tuner, with_training_defaults

    folder = Path(path).expanduser()
    is_adapter = folder.is_dir() and not (folder / "config.json").is_file()
    if not has_score_head(folder, is_adapter):
        raise OmniError(
            f"{flag} {path} is not a reward model (its checkpoint has no sequence-classification head, or its "
            "adapter was not trained on one): train one with omni rlhf --algo rm"
        )
    options = with_training_defaults(ModelOptions(), folder) if is_adapter else ModelOptions(model=path)
    try:
        loaded = load_model(options, registry, head="sequence_classification")
    except OmniError as exc:
        raise OmniError(f"{flag} {path}: {exc}") from None
    model = loaded.model
    if is_adapter:
        tuner = find_tuner(folder, registry)
        model = tuner.merge(tuner.load(model, folder))
    if model.config.num_labels != 1:
        raise OmniError(
            f"{flag} {path}: the model gives {model.config.num_labels} scores per sequence; a reward model "
            "gives one (train one with omni rlhf --algo rm)"
        )
    return model.eval().requires_grad_(False), loaded.path


def has_score_head(folder: Path, is_adapter: bool) -> bool:
    """Whether a local checkpoint is a classifier, or an adapter a classifier's (peft's task type); a hub id is
    taken on trust. A causal LM would get a fresh, untrained head and score at random."""
    config = folder / ("adapter_config.json" if is_adapter else "config.json")
    if not config.is_file():
        return True
    data = json.loads(config.read_text(encoding="utf-8"))
    if is_adapter:
        return data.get("task_type") == "SEQ_CLS"
    return any(a.endswith("ForSequenceClassification") for a in data.get("architectures") or ())


class RewardModelReward:
    """Scores completions with a reward model: the prompt's messages plus the completion as the assistant's answer,
    encoded by the reward model's template, in batches of `batch_size`."""

    def __init__(self, path: str, registry: Registry, batch_size: int = 16) -> None:
        self.model, base = load_scorer(path, registry)
        self.prompts = PromptEncoder.load(base, registry=registry)  # the reward model's tokenizer and template
        self.batch_size = batch_size

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        """One score per completion (`prompts` are message lists; completions strings or message lists)."""
        sequences = [self._encode(prompt, completion) for prompt, completion in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        for start in range(0, len(sequences), self.batch_size):
            scores += self._score(sequences[start : start + self.batch_size])
        return scores

    def _encode(self, prompt: list[dict[str, Any]], completion: Any) -> list[int]:
        answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return list(self.prompts.template.encode({"messages": [*prompt, *answer]}).input_ids)

    @torch.no_grad()
    def _score(self, sequences: list[list[int]]) -> list[float]:
        # Right-padded, as the reward model was trained: it scores each row's last token before the padding.
        pad = self.model.config.pad_token_id
        width = max(map(len, sequences))
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        device = self.model.device
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        return logits[:, 0].float().tolist()
