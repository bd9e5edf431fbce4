"""The generic vision-language path: any `AutoModelForImageTextToText` checkpoint whose processor has a chat
template trains and serves with images, no model plugin needed (Qwen2-VL and Qwen2.5-VL go this way).

Rows are rendered by the processor's own chat template and tokenized by the processor's own call, so ids
equal `processor.apply_chat_template(..., tokenize=True)`; labels cover exactly the answers.
"""

from __future__ import annotations

import base64
import json

import openai
import pytest
import torch
from omni.cli.main import main
from omni.errors import OmniError
from omni.models.multimodal import load_processor
from omni.plugins import get_registry
from omni.template import get_template
from omni.template.base import IGNORE_INDEX, RowTooLongError, TemplateOptions
from omni.template.multimodal import content_parts
from omni.testing.synthetic import two_image_row, write_shapes
from omni.testing.vision_language import build_tiny_llava, build_tiny_qwen2_vl, padded_and_padding_free_losses
from omni.train.collators import PaddingCollator, PaddingFreeCollator
from safetensors.torch import load_file

from tests.helpers import OMNI, run_omni, start_serving


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def vl_model(request, tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp(request.param), model_type=request.param)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), train=128, held_out=16)


def processor_reference(processor, row):
    """transformers' own tokenization of the row: content parts naming the image files."""
    images = iter(row["images"])
    conversation = [
        {
            "role": m["role"],
            "content": [
                {**p, "path": next(images)} if p["type"] == "image" else p for p in content_parts(m["content"])
            ],
        }
        for m in row["messages"]
    ]
    return processor.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt")


def test_a_row_with_images_encodes_as_the_processor_does(vl_model, shapes):
    processor = load_processor(str(vl_model))
    template = get_template("multimodal", processor)
    row = two_image_row(shapes)
    encoded = template.encode(row)
    expected = processor_reference(processor, row)
    assert encoded.input_ids == expected["input_ids"][0].tolist()
    assert encoded.input_ids.count(processor.image_token_id) == 8  # two 64 x 64 images of 4 tokens each
    torch.testing.assert_close(encoded.extras["pixel_values"], expected["pixel_values"])
    assert encoded.extras["image_grid_thw"].tolist() == expected["image_grid_thw"].tolist()
    assert encoded.extras["mm_token_type_ids"].tolist() == expected["mm_token_type_ids"].tolist()
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    assert processor.tokenizer.decode(trained) == "".join(f"{a}<|im_end|>" for a in answers)
    prompt = template.encode_prompt(row)
    assert processor.tokenizer.decode(prompt.input_ids).endswith(
        "And here? <|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_checkpoint_with_a_vision_tower_resolves_to_the_generic_family(vl_model):
    from omni.models.resolve import resolve_model

    resolved = resolve_model(str(vl_model), get_registry())
    assert resolved.spec.name == "image-text-to-text" and resolved.spec.template == "multimodal"


def test_template_render_shows_the_processor_tokens(vl_model, shapes, capsys):
    assert main(["template", "render", "--model", str(vl_model), "--dataset", str(shapes.held_out)]) == 0
    shown = capsys.readouterr().out
    answer = json.loads(shapes.held_out.read_text().splitlines()[0])["solution"]
    assert "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>What colour is the shape?" in shown
    assert shown.rstrip().endswith(f"[[{answer}<|im_end|>]]")


def test_truncating_into_an_image_is_a_row_error(vl_model, shapes):
    processor = load_processor(str(vl_model))
    template = get_template("multimodal", processor, TemplateOptions(max_length=20))
    with pytest.raises(RowTooLongError, match="would cut into its images"):
        template.encode(two_image_row(shapes))


def image_and_text_features(vl_model, shapes):
    """The model, its processor, and the encoded features of a two-image row and a text row, for one batch."""
    from omni.models.multimodal import load_image_text_to_text
    from omni.models.options import LoadOptions, ModelOptions

    model, processor = load_image_text_to_text(str(vl_model), model_options=ModelOptions(), load_options=LoadOptions())
    template = get_template("multimodal", processor)
    text_row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    features = [
        {"input_ids": e.input_ids, "labels": e.labels, **e.extras}
        for e in map(template.encode, [two_image_row(shapes), text_row])
    ]
    return model, processor, features


def test_image_rows_batch_with_text_rows_and_the_model_takes_the_batch(vl_model, shapes):
    model, processor, features = image_and_text_features(vl_model, shapes)
    padded = PaddingCollator(pad_token_id=processor.tokenizer.pad_token_id)(features)
    assert padded["mm_token_type_ids"].shape == padded["input_ids"].shape
    assert padded["mm_token_type_ids"][1].sum() == 0  # the text row: every token is text
    with pytest.raises(OmniError, match="M-RoPE"):  # its 3-D positions come from whole rows
        PaddingFreeCollator()(features)
    batch = {k: v for k, v in padded.items() if k not in ("loss_positions", "num_tokens")}
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_padding_free_rows_get_their_m_rope_positions_and_the_padded_loss(vl_model, shapes, tmp_path, one_thread):
    """Concatenated rows each keep the 3-D rotary positions the model's get_rope_index gives the whole row, so
    the padding-free batch's loss is the padded batch's; `omni sft --padding-free` trains on them."""
    model, processor, features = image_and_text_features(vl_model, shapes)
    padded, flat = padded_and_padding_free_losses(model, features, processor.tokenizer.pad_token_id)
    torch.testing.assert_close(flat, padded, rtol=1e-5, atol=0)
    argv = ["sft", "--model", str(vl_model), "--dataset", str(shapes.held_out), "--output-dir", str(tmp_path / "run")]
    assert main([*argv, "--tuner", "lora", "--padding-free", "true", "--max-steps", "1", "--save-strategy", "no"]) == 0


def test_another_family_without_a_plugin_trains_from_the_cli(vl_model, shapes, tmp_path):
    """Qwen2-VL and Qwen2.5-VL have no plugin: LoRA with --freeze-vit trains a couple of steps on image rows."""
    out = tmp_path / "run"
    argv = ["sft", "--model", str(vl_model), "--dataset", str(shapes.held_out), "--output-dir", str(out)]
    flags = ["--tuner", "lora", "--freeze-vit", "true", "--max-steps", "2", "--per-device-train-batch-size", "4"]
    assert main([*argv, *flags, "--save-strategy", "no", "--logging-steps", "1"]) == 0
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert (out / "adapter_model.safetensors").is_file() and (out / "processor_config.json").is_file()


def test_llava_trains_from_the_cli_through_the_generic_path(shapes, tmp_path):
    """LLaVA (CLIP tower, projector, Llama) has no plugin either: its processor's template and call encode the
    rows (loss on the answers only), and LoRA with --freeze-vit trains a couple of steps."""
    model = build_tiny_llava(tmp_path / "llava")
    processor = load_processor(str(model))
    row = two_image_row(shapes)
    encoded = get_template("multimodal", processor).encode(row)
    assert encoded.input_ids == processor_reference(processor, row)["input_ids"][0].tolist()
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    assert processor.tokenizer.decode(trained) == "".join(f"{a}<|eot_id|>" for a in answers)
    assert encoded.extras["pixel_values"].shape == (2, 3, 28, 28)

    out = tmp_path / "run"
    argv = ["sft", "--model", str(model), "--dataset", str(shapes.held_out), "--output-dir", str(out)]
    flags = ["--tuner", "lora", "--freeze-vit", "true", "--max-steps", "2", "--per-device-train-batch-size", "4"]
    assert main([*argv, *flags, "--save-strategy", "no", "--logging-steps", "1"]) == 0
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert json.loads((out / "args.json").read_text())["model"] == str(model)


# LoRA on every Linear layer of the language model and, with --freeze-aligner false, of the merger; the vision
# tower frozen. The random model's output head trains in full (--modules-to-save lm_head): with the frozen random
# head and final norm its logits stay near uniform (LoRA alone, all-linear rank 32 at 2e-2: loss ~6.2 after 12
# epochs). 256 rows, 6 epochs: held-out 32/32 when measured.
TRAIN_FLAGS = (
    "--tuner", "lora", "--target-modules", "all-linear", "--modules-to-save", "lm_head",
    "--freeze-vit", "true", "--freeze-aligner", "false",
    "--num-train-epochs", "6", "--per-device-train-batch-size", "16", "--learning-rate", "5e-3",
    "--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--weight-decay", "0",
    "--gradient-checkpointing", "false", "--save-strategy", "no", "--logging-steps", "8",
)  # fmt: skip


@pytest.mark.slow
def test_shapes_are_learned_from_the_image_and_served_to_openai_clients(tmp_path_factory):
    base = build_tiny_qwen2_vl(tmp_path_factory.mktemp("qwen2_5_vl"))
    shapes = write_shapes(tmp_path_factory.mktemp("shapes"), train=256, held_out=32)
    out = tmp_path_factory.mktemp("trained")
    argv = ["sft", "--model", str(base), "--dataset", str(shapes.train), "--output-dir", str(out), *TRAIN_FLAGS]
    result = run_omni(*argv, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    # --freeze-vit: the adapter holds nothing of the vision tower (so merging leaves it byte-equal); the merger
    # (--freeze-aligner false), the language model and the head are adapted.
    adapted = load_file(out / "adapter_model.safetensors")
    assert not [name for name in adapted if ".visual." in name and ".visual.merger." not in name]
    assert {".visual.merger.", ".language_model.", ".lm_head."} <= {
        part for name in adapted for part in (".visual.merger.", ".language_model.", ".lm_head.") if part in name
    }

    answers = out / "answers.jsonl"
    argv = ["infer", "--model", str(base), "--adapters", str(out), "--input", str(shapes.held_out)]
    result = run_omni(*argv, "--output", str(answers), "--max-new-tokens", "4", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert sum(row["response"].strip() == row["solution"] for row in rows) / len(rows) >= 0.9  # chance is 0.25

    # A held-out image omni infer answered right: the server, given it as an OpenAI part, answers the same.
    row = next(row for row in rows if row["response"].strip() == row["solution"])
    png = base64.b64encode((shapes.directory / row["images"][0]).read_bytes()).decode()
    command = [str(OMNI), "serve", "--model", str(base), "--adapters", f"shapes={out}", "--port", "0"]
    process, url, log = start_serving(command)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        content = [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "text", "text": "What colour is the shape?"},
        ]
        messages = [{"role": "user", "content": content}]
        reply = client.chat.completions.create(model="shapes", messages=messages, max_tokens=4)
        assert reply.choices[0].message.content.strip() == row["solution"], "".join(log[-20:])
    finally:
        process.terminate()
        process.wait(timeout=30)
