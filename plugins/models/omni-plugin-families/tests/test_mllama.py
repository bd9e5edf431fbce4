"""Llama 3.2 Vision (Mllama) with images: rows encode as `MllamaProcessor` does over the published chat template;
the per-token cross_attention_mask (tokens x images x tiles) is truncated with the ids and batches rows of different
lengths and image counts; `omni sft` trains LoRA with the vision model frozen and `omni serve` answers an OpenAI
image_url request."""

from __future__ import annotations

import base64
import json

import openai
import pytest
import torch
from omni.api import IGNORE_INDEX, LoadOptions, ModelOptions, OmniError, PtEngine, TemplateOptions
from omni.cli.main import main
from omni.plugins import load_plugins
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.template import get_template
from omni.testing.synthetic import SHAPE_COLOURS, two_image_row
from omni.testing.vision_language import processor_reference
from omni.train.collators import BATCH_INFO_KEYS, PaddingCollator, PaddingFreeCollator, SequenceShardCollator
from omni_plugin_families.testing import build_tiny_mllama
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def mllama(tmp_path_factory):
    return build_tiny_mllama(tmp_path_factory.mktemp("mllama"))


@pytest.fixture(scope="module")
def loaded(mllama):
    """(model, processor, the family's template) as omni loads them."""
    registry = load_plugins({}).registry
    spec = registry.get("models", "mllama").spec
    model, processor = spec.load()(str(mllama), model_options=ModelOptions(), load_options=LoadOptions())
    return model, processor, get_template(None, processor, model_spec=spec, registry=registry)


def two_images(shapes):
    """Two turns, one image each. The published template refuses a system message beside images."""
    row = two_image_row(shapes, "held_out")
    return {**row, "messages": [m for m in row["messages"] if m["role"] != "system"]}


def one_image(shapes):
    """Two turns, the image in the first only, a longer second question."""
    row = json.loads(shapes.held_out.read_text().splitlines()[2])
    follow_up = [
        {"role": "user", "content": "Are you sure? Answer again with the colour only."},
        {"role": "assistant", "content": row["solution"]},
    ]
    return {"messages": [*row["messages"], *follow_up], "images": [str(shapes.directory / row["images"][0])]}


def features(template, rows):
    return [{"input_ids": e.input_ids, "labels": e.labels, **e.extras} for e in map(template.encode, rows)]


@pytest.mark.parametrize("make_row", [one_image, two_images])
def test_image_rows_encode_as_mllamas_processor_does(make_row, loaded, shapes):
    _, processor, template = loaded
    row = make_row(shapes)
    encoded = template.encode(row)
    expected = processor_reference(processor, row)
    assert encoded.input_ids == expected["input_ids"][0].tolist()
    assert encoded.input_ids.count(processor.image_token_id) == len(row["images"])
    # Pixels (images x tiles), aspect ratios and each token's cross-attention mask over the tiles: all equal.
    assert set(encoded.extras) == {"pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"}
    for key, value in encoded.extras.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    assert processor.tokenizer.decode(trained) == "".join(f"{a}<|eot_id|>" for a in answers)


def test_left_truncation_cuts_the_cross_attention_mask_with_the_ids(loaded, shapes):
    _, processor, _ = loaded
    row = one_image(shapes)
    whole = processor_reference(processor, row)
    keep = whole["input_ids"].shape[1] - 3  # drops the BOS and the user header, keeps the image
    truncated = get_template("multimodal", processor, TemplateOptions(max_length=keep)).encode(row)
    assert truncated.input_ids == whole["input_ids"][0, 3:].tolist()
    torch.testing.assert_close(truncated.extras["cross_attention_mask"], whole["cross_attention_mask"][:, 3:])


def test_rows_of_different_lengths_and_image_counts_batch_as_each_row_alone(loaded, shapes):
    """Padding changes nothing: each row's loss in the padded batch is its loss alone (the shorter row's pads and
    its missing second image are masked out of its cross-attention)."""
    model, processor, template = loaded
    rows = features(template, [one_image(shapes), two_images(shapes)])
    collate = PaddingCollator(pad_token_id=processor.tokenizer.pad_token_id)
    batch = collate(rows)
    masks = batch["cross_attention_mask"]
    assert masks.shape == (2, max(len(row["input_ids"]) for row in rows), 2, 2)  # rows x tokens x images x tiles
    for i, row in enumerate(rows):
        _, tokens, images, tiles = row["cross_attention_mask"].shape
        torch.testing.assert_close(masks[i, :tokens, :images, :tiles], row["cross_attention_mask"][0])
        assert not masks[i, tokens:].any() and not masks[i, :, images:].any()
    assert batch["pixel_values"].shape[:2] == (2, 2) and not batch["pixel_values"][0, 1].any()

    def summed_token_losses(inputs):
        output = model(**{key: value for key, value in inputs.items() if key not in BATCH_INFO_KEYS})
        assert torch.isfinite(output.loss)
        targets = inputs["labels"][:, 1:]
        return torch.nn.functional.cross_entropy(output.logits[:, :-1].transpose(1, 2), targets, reduction="none").sum(
            1
        )

    with torch.no_grad():
        batched = summed_token_losses(batch)
        alone = torch.cat([summed_token_losses(collate([row])) for row in rows])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-4)

    # One concatenated row, or a row cut between processes, would pair tokens with other rows' or cut images.
    with pytest.raises(OmniError, match="--padding-free.*cross_attention_mask"):
        PaddingFreeCollator()(rows)
    with pytest.raises(OmniError, match="sequence parallelism.*cross_attention_mask"):
        SequenceShardCollator(collate, shards=2, pad_token_id=processor.tokenizer.pad_token_id)(rows)
    text_row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    with pytest.raises(OmniError, match="with and without images"):
        collate([*rows, *features(template, [text_row])])


def test_lora_with_the_vision_model_frozen_trains_and_serves_an_image(mllama, shapes, tmp_path, one_thread):
    out = tmp_path / "run"
    argv = ["sft", "--model", str(mllama), "--dataset", str(shapes.train), "--output-dir", str(out)]
    flags = [
        "--tuner", "lora", "--freeze-vit", "true", "--modules-to-save", "lm_head", "--max-steps", "30",
        "--per-device-train-batch-size", "4", "--learning-rate", "1e-2", "--lr-scheduler-type", "constant",
        "--warmup-ratio", "0", "--save-strategy", "no", "--logging-steps", "1",
    ]  # fmt: skip
    assert main([*argv, *flags]) == 0
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 30 and losses[-1] < losses[0]
    # --freeze-vit: the adapter holds nothing of the vision model, so the merged model keeps it byte-equal.
    adapted = load_file(out / "adapter_model.safetensors")
    assert any(".language_model." in name for name in adapted)
    assert not [name for name in adapted if ".vision_model." in name]

    held_out = json.loads(shapes.held_out.read_text().splitlines()[0])
    image = shapes.directory / held_out["images"][0]
    png = base64.b64encode(image.read_bytes()).decode()
    content = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "text", "text": "What colour is the shape?"},
    ]
    engine = PtEngine(str(mllama), adapters={"shapes": str(out)})
    try:
        with serving(create_app(engine, ServedModels("mllama", ("shapes",)))) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            reply = client.chat.completions.create(
                model="shapes", messages=[{"role": "user", "content": content}], max_tokens=3, temperature=0
            )
    finally:
        engine.close()
    # The prompt is the published template's with the image's one <|image|> token; the answer is generated text.
    asked = {"messages": [{"role": "user", "content": "<image>What colour is the shape?"}], "images": [str(image)]}
    prompt = engine.template.encode_prompt(asked)
    assert reply.usage.prompt_tokens == len(prompt.input_ids)
    assert reply.choices[0].message.content.strip() in SHAPE_COLOURS, reply.choices[0].message.content
