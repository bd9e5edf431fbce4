"""`omni template render`: show how a template encodes one dataset row, trained tokens marked.

Only the tokenizer (the processor, for the `multimodal` template) is loaded, never model weights. In a terminal trained text is green; when the
output is not a terminal it is wrapped in ``[[ ]]`` so it reads in logs and plain files.
"""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

from omni.cli.invocation import Invocation
from omni.data import DataOptions, load_datasets
from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX, Encoded
from omni.template.render_options import TemplateRenderOptions
from omni.template.resolve import get_template, template_name

_GREEN, _RESET = "\033[32m", "\033[0m"


def run(invocation: Invocation) -> int:
    """Print row `--index` of `--dataset` as `--model`'s template encodes it."""
    from transformers import AutoTokenizer

    from omni.models.resolve import resolve_model

    options: TemplateRenderOptions = invocation.options
    if not options.dataset:
        raise OmniError("omni template render: pass --dataset FILE_OR_NAME")
    registry = invocation.registry
    resolved = resolve_model(options.model, registry, model_type=options.model_type, use_hf=options.use_hf)
    name = template_name(options.template, resolved.spec)
    if name == "multimodal":  # images become tokens only through the model's processor
        from omni.models.multimodal import load_processor

        processor = load_processor(resolved.path_or_id)
    else:
        processor = AutoTokenizer.from_pretrained(resolved.path_or_id)
    template = get_template(name, processor, options.template_options(), registry=registry)
    tokenizer = template.tokenizer
    rows = load_datasets(
        DataOptions(dataset=[options.dataset], streaming=True),
        registry,
        dataset_options={s.spec.name: s.options for s in invocation.selected.get("datasets", [])},
        require_answer=False,
    )
    row = next(itertools.islice(rows.train, options.index, None), None)
    if row is None:
        raise OmniError(f"{options.dataset} has no row {options.index}")
    encoded = template.encode(row) if _has_answer(row) else template.encode_prompt(row)
    where = f"{row.source}:{row.location}"
    if options.json:
        print(json.dumps(_as_json(encoded, tokenizer, where, name), ensure_ascii=False, indent=2))
    else:
        print(_as_text(encoded, tokenizer, where, name, colour=sys.stdout.isatty()))
    return 0


def _has_answer(row: dict[str, Any]) -> bool:
    return any(m.get("role") == "assistant" for m in row.get("messages", []))


def _as_json(encoded: Encoded, tokenizer: Any, where: str, name: str) -> dict[str, Any]:
    tokens = [
        {"id": token, "text": tokenizer.decode([token]), "trained": label != IGNORE_INDEX}
        for token, label in zip(encoded.input_ids, encoded.labels, strict=True)
    ]
    return {"row": where, "template": name, "num_tokens": len(tokens), "tokens": tokens}


def _as_text(encoded: Encoded, tokenizer: Any, where: str, name: str, *, colour: bool) -> str:
    """The decoded row with trained runs marked; token boundaries are not shown (see --json)."""
    trained = [label != IGNORE_INDEX for label in encoded.labels]
    body = []
    position = 0
    for is_trained, run in itertools.groupby(trained):
        length = len(list(run))
        text = tokenizer.decode(encoded.input_ids[position : position + length])
        position += length
        if is_trained:
            text = f"{_GREEN}{text}{_RESET}" if colour else f"[[{text}]]"
        body.append(text)
    legend = "green" if colour else "[[ ]]"
    head = f"# {where}  template={name}  tokens={len(trained)}  trained={sum(trained)} ({legend})"
    return head + "\n" + "".join(body)
