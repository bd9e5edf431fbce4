"""Freezing parts by flag, LoRA on the language model only, and padding-free batches of mixed media."""

from __future__ import annotations

import json

import pytest
import torch
from omni.cli.main import main
from omni.testing.synthetic import write_motion, write_shapes, write_tones
from safetensors.torch import load_file

THINKER_PREFIX = "thinker."


def thinker_weights(path):
    weights = load_file(str(path / "model.safetensors"))
    return {k.removeprefix(THINKER_PREFIX): v for k, v in weights.items() if not k.startswith(("talker.", "code2wav."))}


def part_of(name):
    from omni_plugin_qwen3_omni import THINKER_PARTS

    return THINKER_PARTS.part_of(name)


@pytest.mark.parametrize(
    ("flags", "frozen"),
    [
        (["--freeze-vision", "--freeze-audio"], {"vision", "audio"}),
        (["--freeze_vit", "true", "--freeze_aligner", "true"], {"vision", "aligner"}),  # ms-swift spellings
        (["--freeze-llm"], {"llm"}),
    ],
    ids=["vision+audio", "swift-vit+aligner", "llm"],
)
def test_freeze_flags_leave_exactly_the_named_parts_untouched(omni_dir, tmp_path, flags, frozen):
    shapes = write_shapes(tmp_path / "s", train=8, held_out=0)
    tones = write_tones(tmp_path / "t", train=8, held_out=0)
    out = tmp_path / "run"
    argv = ["sft", "--model", str(omni_dir), "--dataset", str(shapes.train), str(tones.train), "--output-dir", str(out)]
    argv += ["--tuner", "full", "--max-steps", "3", "--per-device-train-batch-size", "8", "--learning-rate", "1e-2"]
    assert main([*argv, "--save-strategy", "no", "--gradient-checkpointing", "false", *flags]) == 0
    before, after = thinker_weights(omni_dir), load_file(str(out / "model.safetensors"))
    assert set(after) <= set(before)
    changed = {part_of(n) for n in after if not torch.equal(before[n], after[n])}
    unchanged = {part_of(n) for n in after if torch.equal(before[n], after[n])}
    assert frozen <= unchanged and not frozen & changed
    assert {"llm", "vision", "audio", "aligner"} - frozen <= changed


def test_unfreezing_a_part_under_lora_with_named_targets_is_a_clear_error(omni_dir, tmp_path, capsys):
    shapes = write_shapes(tmp_path / "s", train=2, held_out=0)
    argv = ["sft", "--model", str(omni_dir), "--dataset", str(shapes.train), "--tuner", "lora", "--max-steps", "1"]
    argv += ["--target-modules", "q_proj"]  # named targets: LoRA leaves the part flags to core
    assert main([*argv, "--output-dir", str(tmp_path / "o"), "--freeze-vision", "false"]) != 0
    assert "--freeze-vision false trains that part in full" in capsys.readouterr().err


def mixed_rows(tmp_path):
    """Text, image, audio and video rows (and one row with an image and audio together), interleaved."""
    from omni.data import DataOptions, load_datasets

    shapes = write_shapes(tmp_path / "s", train=4, held_out=0)
    tones = write_tones(tmp_path / "t", train=4, held_out=0)
    motion = write_motion(tmp_path / "m", train=4, held_out=0)
    text = tmp_path / "text.jsonl"
    answers = ["four", "blue", "seven", "cold"]
    text.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}]}
            )
            + "\n"
            for i, a in enumerate(answers)
        )
    )
    both = tmp_path / "both.jsonl"
    shape_row = json.loads(shapes.train.read_text().splitlines()[0])
    tone_row = json.loads(tones.train.read_text().splitlines()[0])
    both.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "<image>Colour, and <audio>pitch?"},
                    {"role": "assistant", "content": f"{shape_row['solution']} {tone_row['solution']}"},
                ],
                "images": [str(shapes.directory / shape_row["images"][0])],
                "audios": [str(tones.directory / tone_row["audios"][0])],
            }
        )
        + "\n"
    )
    paths = [text, shapes.train, tones.train, motion.train, both]
    data = load_datasets(DataOptions(dataset=[str(p) for p in paths]))
    return list(data.train), paths


def test_padding_free_batches_of_mixed_media_give_the_padded_loss(omni_dir, template, tmp_path):
    """The same rows, padded or concatenated padding-free (positions restarting per row), give one loss."""
    import transformers
    from omni.train.collators import PaddingCollator, PaddingFreeCollator
    from omni.train.trainer import causal_lm_loss
    from omni_plugin_lora.options import LoraOptions
    from omni_plugin_lora.tuner import LoraTuner

    rows, _ = mixed_rows(tmp_path)
    features = [{"input_ids": e.input_ids, "labels": e.labels, **e.extras} for e in map(template.encode, rows)]
    assert len(features) == 17
    model = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir).thinker
    from omni.api import get_registry

    spec = get_registry().get("models", "qwen3-omni").spec
    torch.manual_seed(0)
    model = LoraTuner(LoraOptions(lora_rank=4, init_weights="false"), model_spec=spec).prepare(model).eval()
    assert not any("visual" in n or "audio_tower" in n for n, p in model.named_parameters() if p.requires_grad)
    padded = PaddingCollator(pad_token_id=template.tokenizer.pad_token_id)(features)
    packed = PaddingFreeCollator()(features)
    assert packed["input_ids"].shape[0] == 1 and packed["position_ids"].shape == (4, 1, packed["input_ids"].shape[1])
    for key in ("pixel_values", "image_grid_thw", "input_features", "pixel_values_videos", "video_grid_thw"):
        torch.testing.assert_close(padded[key], packed[key])
    with torch.no_grad():
        padded_loss, _ = causal_lm_loss(model, {k: v for k, v in padded.items() if k != "num_tokens"})
        packed_loss, _ = causal_lm_loss(model, {k: v for k, v in packed.items() if k != "num_tokens"})
    # Same targets (a row's first token is never a target), attention kept within each row: equal up to
    # float32 summation order.
    assert abs(padded_loss.item() - packed_loss.item()) < 1e-4 * padded_loss.item()


def test_mixed_media_train_with_lora_and_padding_free(omni_dir, tmp_path):
    _, paths = mixed_rows(tmp_path)
    out = tmp_path / "run"
    argv = ["sft", "--model", str(omni_dir), "--dataset", *map(str, paths), "--output-dir", str(out)]
    argv += ["--tuner", "lora", "--padding-free", "--num-train-epochs", "20", "--per-device-train-batch-size", "6"]
    argv += ["--learning-rate", "1e-2", "--save-strategy", "no", "--logging-steps", "5", "--warmup-ratio", "0"]
    assert main(argv) == 0
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all(".model.layers." in k and "self_attn" in k for k in adapter)  # the LLM's attention only
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.9 * losses[0]  # LoRA r=8 on a random 0.4M model: it learns, slowly
