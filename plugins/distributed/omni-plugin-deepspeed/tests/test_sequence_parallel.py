"""omni-plugin-deepspeed: `--sequence-parallel-size` (DeepSpeed Ulysses) on 2 CPU processes (gloo).

Each long row is split across the processes; the loss, the gradients and the trained weights equal one
process training on the whole rows, for text rows and for Qwen3-Omni rows with an image and audio (those run
the towers whole on every process and are split before the decoder layers). Settings Ulysses cannot run are
one-line errors before any model loads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from omni.api import IGNORE_INDEX, OmniError
from omni.train.collators import PaddingCollator, PaddingFreeCollator, SequenceShardCollator
from omni.train.trainer import split_decoder_inputs

from tests.core.test_distributed import assert_same_weights, weights

from .test_zero import NO_SAVES, _omni, omni_ok


def _logged(out: Path, key: str) -> list[float]:
    return [r[key] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if key in r]


def _long_rows(path: Path, words: int = 300) -> Path:
    """Four copies of one long conversation (~700 tokens): any order of rows gives the same batches."""
    rng = random.Random(0)
    vocabulary = "red green blue cat dog sky tree river stone cloud".split()
    half = " ".join(rng.choice(vocabulary) for _ in range(words // 2))
    row = {"messages": [{"role": "user", "content": half}, {"role": "assistant", "content": half[::-1]}]}
    path.write_text((json.dumps(row) + "\n") * 4)
    return path


@pytest.mark.slow  # three short runs of a tiny model, two of them on 2 processes: about 2 minutes on 2 cores
def test_rows_split_across_two_processes_train_as_one_process_does(tiny_qwen3, tmp_path):
    data = _long_rows(tmp_path / "long.jsonl")
    common = ["sft", "--model", tiny_qwen3, "--dataset", data, "--tuner", "full", "--max-steps", "2"]
    common += ["--learning-rate", "1e-3", *NO_SAVES]
    one = tmp_path / "one"
    omni_ok(*common, "--batch-size", "2", "--output-dir", one)

    # Two rows per step either way: here one per micro-batch, each split in halves across the two processes.
    split = ["--batch-size", "1", "--gradient-accumulation-steps", "2", "--nproc-per-node", "2"]
    zero2 = tmp_path / "zero2"
    result = omni_ok(*common, *split, "--deepspeed", "zero2", "--sequence-parallel-size", "2", "--output-dir", zero2)
    assert "each row split across 2 processes (Ulysses)" in result.stderr
    assert _logged(zero2, "loss") == pytest.approx(_logged(one, "loss"), rel=1e-5)
    assert _logged(zero2, "grad_norm") == pytest.approx(_logged(one, "grad_norm"), rel=1e-5)
    assert_same_weights(one, zero2)

    # ZeRO-3 with plain SGD, whose update is proportional to the gradient: the weights show its scale, and the
    # validation rows (whole rows on each process, Ulysses off) give one process's validation loss.
    from omni_plugin_deepspeed.strategy import load_config

    config = load_config("zero3")
    config |= {"optimizer": {"type": "SGD", "params": {"lr": 0.5}}, "zero_allow_untested_optimizer": True}
    (tmp_path / "sgd3.json").write_text(json.dumps(config))
    sgd = ["--learning-rate", "0.5", "--warmup-ratio", "0", "--val-dataset", data, "--eval-steps", "1"]
    plain, zero3 = tmp_path / "sgd-zero2", tmp_path / "sgd-zero3"
    omni_ok(*common, *sgd, "--batch-size", "1", "--nproc-per-node", "2", "--deepspeed", tmp_path / "sgd3.json",
            "--output-dir", plain)  # fmt: skip
    omni_ok(*common, *sgd, *split, "--deepspeed", tmp_path / "sgd3.json", "--sequence-parallel-size", "2",
            "--output-dir", zero3)  # fmt: skip
    assert _logged(zero3, "loss") == pytest.approx(_logged(plain, "loss"), rel=1e-5)
    assert _logged(zero3, "eval_loss") == pytest.approx(_logged(plain, "eval_loss"), rel=1e-5)
    before, after = weights(tiny_qwen3), weights(plain)
    moved = max((after[k] - before[k]).abs().max() for k in before.keys() & after.keys())
    assert moved > 1e-2
    assert_same_weights(plain, zero3, tol=1e-5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nproc-per-node", "3", "--deepspeed", "zero2", "--sequence-parallel-size", "2"],
         "--sequence-parallel-size 2 does not divide the run's 3 processes"),
        (["--nproc-per-node", "2", "--sequence-parallel-size", "2"],
         "--sequence-parallel-size is an option of the deepspeed strategy, which is off: switch it on with --deepspeed"),
        (["--nproc-per-node", "2", "--deepspeed", "zero3", "--sequence-parallel-size", "2", "--padding-free", "true"],
         "--padding-free and --packing with --sequence-parallel-size need flash attention on a GPU"),
        (["--nproc-per-node", "2", "--deepspeed", "zero3", "--sequence-parallel-size", "2", "--attn-impl", "eager"],
         "--attn-impl eager cannot run with --sequence-parallel-size"),
        (["--nproc-per-node", "2", "--deepspeed", "zero2", "--sequence-parallel-size", "0"],
         "--sequence-parallel-size 0: must be at least 1"),
    ],
)  # fmt: skip
def test_settings_ulysses_cannot_run_are_one_line_errors_before_the_model_loads(flags, message, colors, capsys):
    code = _omni("sft", "--model", "/nonexistent", "--dataset", str(colors), *flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "/nonexistent" not in err, err


def test_algorithms_that_cannot_split_rows_refuse_sequence_parallel(colors, capsys):
    flags = ["--nproc-per-node", "2", "--deepspeed", "zero2", "--sequence-parallel-size", "2"]
    code = _omni("rlhf", "--algo", "dpo", "--model", "/nonexistent", "--dataset", str(colors), *flags,
                 plugins="deepspeed,dpo")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "dpo does not train with rows split across processes" in err, err


def _row(length: int, prompt: int) -> dict:
    ids = list(range(10, 10 + length))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]}


def test_batches_for_split_rows_divide_evenly_and_keep_their_positions():
    rows = [_row(7, 3), _row(4, 1)]
    padded = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=4, pad_token_id=0)(rows)
    assert padded["input_ids"].shape == (2, 8) and "attention_mask" not in padded and "loss_positions" not in padded
    assert padded["position_ids"].tolist() == [list(range(8)), list(range(8))]
    assert padded["labels"][0].tolist() == [IGNORE_INDEX] * 3 + list(range(13, 17)) + [IGNORE_INDEX]
    assert padded["num_tokens"] == 11

    # A padding-free row keeps the restart of positions at each sequence; the pad continues the last one.
    free = SequenceShardCollator(PaddingFreeCollator(), shards=4, pad_token_id=0)(rows)
    assert free["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]]
    assert free["input_ids"].shape == (1, 12)


def _rotary_row(length: int, prompt: int, items: int) -> dict:
    """A row with `items` image patches and 4-channel positions (text, then 3-D rotary positions that stall)."""
    text = torch.arange(length, dtype=torch.float)
    rope = torch.stack([text.clamp(max=3), text, text])
    return {**_row(length, prompt), "pixel_values": torch.ones(items, 3), "position_ids": torch.cat([text[None], rope])}


def test_rows_with_media_come_whole_to_every_process_with_the_column_of_each_token():
    rows = [_rotary_row(5, 2, items=4), _rotary_row(3, 1, items=2)]
    batch = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=4, pad_token_id=0)(rows)
    # What the strategy cuts: tokens, labels, text positions (pads go on counting) and each token's column.
    assert batch["input_ids"].shape == (2, 8) and "attention_mask" not in batch
    assert batch["position_ids"].tolist() == [list(range(8)), list(range(8))]
    assert batch["row_columns"].tolist() == [list(range(8)), list(range(8))]
    # What every process gets whole: the model's inputs, multimodal positions continued past each row's end.
    whole = batch["whole_rows"]
    assert not torch.is_tensor(whole) and whole["input_ids"] is batch["input_ids"]
    assert whole["pixel_values"].shape == (6, 3)
    assert whole["position_ids"].shape == (4, 2, 8)
    assert whole["position_ids"][1, 1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # 3 real tokens, then pads
    assert whole["position_ids"][1, 0].tolist() == [0, 1, 2, 3, 3, 4, 5, 6]  # the row's stall is kept

    # Text rows of a multimodal model (every channel the text positions) keep the text path: cut on their tokens.
    text_row = {**_row(5, 2), "position_ids": torch.arange(5, dtype=torch.float).expand(4, 5)}
    text = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=2, pad_token_id=0)([text_row])
    assert text["whole_rows"] is None and text["position_ids"].tolist() == [list(range(6))]
    # The processes of a row exchange batches key by key: a text batch on one and a media batch on another must
    # have the same keys, in the same order.
    assert list(text) == list(batch)


WORDS = "red green blue cat dog sky tree river stone cloud".split()


def image_and_audio_rows(directory: Path, copies: int = 4) -> Path:
    """Copies of one Qwen3-Omni row: one second of audio, 50 words, an image, a question and a 32-word answer. On
    the tiny model its audio lies in the first half of the row, and its image's tokens on both sides of the middle."""
    from omni.testing.synthetic import write_shapes, write_tones

    image = write_shapes(directory / "shapes", train=1, held_out=0).directory / "media/train_0000.png"
    audio = write_tones(directory / "tones", train=1, held_out=0).directory / "media/train_0000.wav"
    words = [WORDS[i % len(WORDS)] for i in range(50)]
    row = {
        "messages": [
            {
                "role": "user",
                "content": f"<audio>{' '.join(words)}<image>What colour is the shape, and is the tone high?",
            },
            {"role": "assistant", "content": " ".join(words[:32])[::-1]},
        ],
        "images": [str(image)],
        "audios": [str(audio)],
    }
    path = directory / "image-and-audio.jsonl"
    path.write_text((json.dumps(row) + "\n") * copies)
    return path


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


def test_each_process_keeps_its_columns_of_the_decoder_inputs_and_its_image_tokens_deepstack_features(
    tiny_omni, tmp_path
):
    import transformers
    from omni.template import get_template
    from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor

    template = get_template("qwen3-omni", Qwen3OmniProcessor.from_pretrained(tiny_omni))
    row = json.loads(image_and_audio_rows(tmp_path, copies=1).read_text())
    encoded = template.encode(row)
    features = {"input_ids": encoded.input_ids, "labels": encoded.labels, **encoded.extras}
    batch = SequenceShardCollator(PaddingCollator(pad_token_id=0), shards=2, pad_token_id=0)([features])
    whole = batch["whole_rows"]

    thinker = transformers.Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(tiny_omni)
    seen = {}
    thinker.get_decoder().register_forward_pre_hook(lambda _, args, kwargs: seen.update(kwargs), with_kwargs=True)
    with torch.no_grad():
        thinker(**whole, use_cache=False)
    config = thinker.config
    ids = whole["input_ids"][0]
    half = ids.shape[0] // 2
    image = (ids == config.image_token_id).nonzero().flatten().tolist()
    audio = (ids == config.audio_token_id).nonzero().flatten()
    first_half = sum(position < half for position in image)
    assert 0 < first_half < len(image) and audio.max() < half  # the layout described

    shards = [split_decoder_inputs(seen, batch["row_columns"][0, s * half : (s + 1) * half]) for s in range(2)]
    for name in ("inputs_embeds", "visual_pos_masks"):
        assert torch.equal(torch.cat([shard[name] for shard in shards], dim=1), seen[name]), name
    for s, shard in enumerate(shards):
        columns = slice(s * half, (s + 1) * half)
        # The multimodal rotary positions are the template's, cut at this shard's columns (text channel first).
        assert torch.equal(shard["position_ids"], whole["position_ids"][..., columns])
        assert shard["position_ids"][0, 0, 0] == s * half
        # Each shard adds the deepstack features of its own image tokens, and of no other.
        own = first_half if s == 0 else len(image) - first_half
        assert [len(layer) for layer in shard["deepstack_visual_embeds"]] == [own]
        assert int(shard["visual_pos_masks"].sum()) == own
    for layer, features in enumerate(seen["deepstack_visual_embeds"]):
        assert torch.equal(torch.cat([shard["deepstack_visual_embeds"][layer] for shard in shards]), features)

    with pytest.raises(OmniError, match="take no attention mask"):
        split_decoder_inputs({**seen, "attention_mask": torch.ones_like(ids)[None]}, torch.arange(half))


@pytest.mark.slow  # one process, then two with ZeRO-2 and Ulysses, on the tiny Qwen3-Omni: ~45 s CPU, 85-115 s on busy 2 cores
def test_rows_with_image_and_audio_split_across_two_processes_train_as_one_process_does(tiny_omni, tmp_path):
    data = image_and_audio_rows(tmp_path)
    common = ["sft", "--model", tiny_omni, "--dataset", data, "--tuner", "full", "--max-steps", "2"]
    common += ["--learning-rate", "1e-3", "--val-dataset", data, "--eval-steps", "1", *NO_SAVES]
    one = tmp_path / "one"
    omni_ok(*common, "--batch-size", "2", "--output-dir", one)

    # Each row's image, audio and text reach both processes; each keeps half of the row from the decoder on.
    split = tmp_path / "split"
    omni_ok(*common, "--batch-size", "1", "--gradient-accumulation-steps", "2", "--nproc-per-node", "2",
            "--deepspeed", "zero2", "--sequence-parallel-size", "2", "--output-dir", split)  # fmt: skip
    assert _logged(split, "loss") == pytest.approx(_logged(one, "loss"), rel=1e-5)
    assert _logged(split, "grad_norm") == pytest.approx(_logged(one, "grad_norm"), rel=1e-5)
    assert _logged(split, "eval_loss") == pytest.approx(_logged(one, "eval_loss"), rel=1e-5)
    # The towers and the language model trained, and alike: the towers' gradients came from both halves.
    before = {k.removeprefix("thinker."): v for k, v in weights(tiny_omni).items()}  # trained: the thinker alone
    after = weights(one)
    for part in ("visual.", "audio_tower.", "model.layers."):
        assert max((after[k] - before[k]).abs().max() for k in after if k.startswith(part)) > 1e-4, part
    assert_same_weights(one, split, tol=1e-5)
