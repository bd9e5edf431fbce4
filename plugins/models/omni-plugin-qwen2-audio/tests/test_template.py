"""The qwen2-audio template: ids and features equal transformers' `Qwen2AudioProcessor`; the pt engine answers."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from omni.api import IGNORE_INDEX, DataError, load_audio
from omni.testing.synthetic import draw_tone


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omni_plugin_qwen2_audio.testing import build_tiny_qwen2_audio

    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"), initializer_range=0.3)


@pytest.fixture(scope="module")
def processor(model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def template(processor):
    from omni.template import get_template

    return get_template("qwen2-audio", processor)


def write_tone(path, band, seconds, seed=0):
    soundfile.write(path, draw_tone(np.random.default_rng(seed), band, 16000, seconds), 16000, subtype="PCM_16")
    return str(path)


def test_ids_and_features_equal_the_processors_for_two_audios(template, processor, tmp_path) -> None:
    low, high = (
        write_tone(tmp_path / "low.wav", (150.0, 400.0), 1.3),
        write_tone(tmp_path / "high.wav", (1e3, 2e3), 2.0),
    )
    row = {
        "messages": [
            {"role": "user", "content": "<audio>Is this tone high or low?"},
            {"role": "assistant", "content": "low"},
            {"role": "user", "content": "<audio>And this one?"},
            {"role": "assistant", "content": "high"},
        ],
        "audios": [low, high],
    }
    encoded = template.encode(row)

    # The published chat template over OpenAI-style parts, then the processor, as transformers' examples do.
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio_url": low}, {"type": "text", "text": "Is this tone high or low?"}]},
        {"role": "assistant", "content": "low"},
        {"role": "user", "content": [{"type": "audio", "audio_url": high}, {"type": "text", "text": "And this one?"}]},
        {"role": "assistant", "content": "high"},
    ]  # fmt: skip
    text = processor.apply_chat_template(conversation, tokenize=False)
    waves = [load_audio(low), load_audio(high)]
    expected = processor(text=text, audio=waves, sampling_rate=16000, return_tensors="pt")
    assert encoded.input_ids == expected["input_ids"][0].tolist()
    torch.testing.assert_close(encoded.extras["input_features"], expected["input_features"])
    assert encoded.extras["feature_attention_mask"].tolist() == expected["feature_attention_mask"].tolist()
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert template.tokenizer.decode(trained) == "low<|im_end|>high<|im_end|>"


def test_pt_engine_answers_depend_on_the_audio(model_dir, tmp_path) -> None:
    from omni.api import GenerationConfig, InferRequest, PtEngine

    clips = [write_tone(tmp_path / f"{i}.wav", band, 1.0, i) for i, band in enumerate([(150.0, 400.0), (1e3, 2e3)])]
    engine = PtEngine(str(model_dir))
    rows = [{"messages": [{"role": "user", "content": "<audio>High or low?"}], "audios": [clip]} for clip in clips]
    answers = engine.generate([InferRequest(row, GenerationConfig(max_new_tokens=8)) for row in rows])
    assert answers[0].choices[0].token_ids != answers[1].choices[0].token_ids
    assert answers[0].prompt_tokens == answers[1].prompt_tokens > 30  # 25 placeholders for one second


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "user", "content": "<audio><audio>Hi"}], "audios": ["a.wav"]}, "2 <audio> tag"),
        ({"messages": [{"role": "user", "content": "<image>Hi"}], "images": ["a.png"]}, "audio only"),
    ],
)
def test_mismatched_or_unsupported_media_are_row_errors(template, row, message) -> None:
    with pytest.raises(DataError, match=message):
        template.encode_prompt(row)


def test_tiny_checkpoint_uses_the_published_weight_names_and_loads_whole(model_dir) -> None:
    import transformers
    from safetensors import safe_open

    with safe_open(model_dir / "model.safetensors", framework="pt") as handle:
        saved = {name: handle.get_tensor(name) for name in handle.keys()}
    prefixes = {name.split(".")[0] for name in saved}
    assert prefixes == {"audio_tower", "language_model", "multi_modal_projector"}
    assert "language_model.model.embed_tokens.weight" in saved and "language_model.lm_head.weight" in saved
    model, info = transformers.Qwen2AudioForConditionalGeneration.from_pretrained(model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(model.lm_head.weight, saved["language_model.lm_head.weight"])
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
