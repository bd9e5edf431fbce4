"""The qwen3-omni template: placeholders match transformers' processor, media tensors and positions are right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omni.api import IGNORE_INDEX, DataError, Video, load_audio
from omni.testing.synthetic import draw_shape, draw_tone, write_shapes, write_tones
from PIL import Image

from tests.helpers import qwen3_omni_processor


@pytest.mark.parametrize("size", [(64, 64), (96, 48)])
def test_image_and_audio_placeholders_and_tensors_equal_the_processors(omni_dir, template, tmp_path, size):
    rng = np.random.default_rng(0)
    image = draw_shape(rng, (220, 40, 40), 64).resize(size)
    image.save(tmp_path / "a.png")
    wave = draw_tone(rng, (150.0, 400.0), 16000, 1.7)
    import soundfile

    soundfile.write(tmp_path / "a.wav", wave, 16000)
    row = {
        "messages": [
            {"role": "user", "content": "<image>Colour? <audio>Pitch?"},
            {"role": "assistant", "content": "red"},
        ],
        "images": [str(tmp_path / "a.png")],
        "audios": [str(tmp_path / "a.wav")],
    }
    encoded = template.encode(row)

    reference = qwen3_omni_processor(omni_dir)
    tokenizer = reference.tokenizer
    text = "<|vision_start|><|image_pad|><|vision_end|>Colour? <|audio_start|><|audio_pad|><|audio_end|>Pitch?"
    stored = load_audio(str(tmp_path / "a.wav"))  # as written: 16-bit samples
    expected = reference(text=text, images=[image], audio=[stored], return_tensors="pt")
    for token in (tokenizer.image_token, tokenizer.audio_token):
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert encoded.input_ids.count(token_id) == int((expected["input_ids"] == token_id).sum()) > 0
    extras = encoded.extras
    torch.testing.assert_close(extras["pixel_values"], expected["pixel_values"])
    assert extras["image_grid_thw"].tolist() == expected["image_grid_thw"].tolist()
    torch.testing.assert_close(extras["input_features"], expected["input_features"], rtol=1e-4, atol=1e-4)
    assert extras["feature_attention_mask"].tolist() == expected["feature_attention_mask"].tolist()
    # Only the answer and its end-of-turn token are trained.
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "red<|im_end|>"


def test_video_patches_follow_the_qwen2_vl_layout(processor):
    """A still clip of two identical frames is one temporal patch; its patches must equal the image processor's
    patches of that frame (which repeats a still image over the temporal patch)."""
    frame = draw_shape(np.random.default_rng(1), (40, 80, 220), 64)
    patches, grid, seconds = processor.video_patches(Video([frame, frame], [0.0, 0.5], fps=2.0))
    image = processor.image_processor(images=[frame], return_tensors="pt")
    assert list(grid) == image["image_grid_thw"][0].tolist()
    torch.testing.assert_close(patches, image["pixel_values"], rtol=1e-5, atol=1e-5)
    assert seconds == 1.0  # two frames per temporal patch at 2 fps


def test_video_rows_get_one_placeholder_per_merged_patch_and_3d_positions(template, processor, tmp_path):
    frames = [Image.new("RGB", (32, 32), (255, 255, 255 - 30 * i)) for i in range(6)]
    paths = []
    for i, frame in enumerate(frames):
        frame.save(tmp_path / f"f{i}.png")
        paths.append(str(tmp_path / f"f{i}.png"))
    row = {
        "messages": [{"role": "user", "content": "<video>Which way?"}, {"role": "assistant", "content": "left"}],
        "videos": [paths],  # a video given as its frames
    }
    encoded = template.encode(row)
    grid = encoded.extras["video_grid_thw"][0]
    video_id = processor.config.video_token_id
    assert encoded.input_ids.count(video_id) == int(grid.prod()) // 4
    assert encoded.extras["pixel_values_videos"].shape[0] == int(grid.prod())
    positions = encoded.extras["position_ids"]
    assert positions.shape == (4, len(encoded))
    where = [i for i, t in enumerate(encoded.input_ids) if t == video_id]
    # Temporal positions step by seconds-per-patch x position_id_per_seconds between frames' patches.
    temporal = positions[1, where]
    assert temporal.unique().numel() == int(grid[0])
    assert positions[0].tolist() == list(range(len(encoded)))


def test_text_only_rows_equal_the_chat_template(template, processor):
    messages = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
    encoded = template.encode({"messages": messages})
    expected = processor.tokenizer.apply_chat_template(messages, tokenize=False)
    assert processor.tokenizer.decode(encoded.input_ids) == expected
    assert set(encoded.extras) == {"position_ids"}
    assert encoded.extras["position_ids"][1].tolist() == list(range(len(encoded)))


def test_missing_media_file_names_the_row(template, tmp_path):
    from omni.data import DataOptions, load_datasets

    shapes = write_shapes(tmp_path / "s", train=2, held_out=0)
    (shapes.directory / "media" / "train_0001.png").unlink()
    rows = load_datasets(DataOptions(dataset=[str(shapes.train)])).train
    with pytest.raises(DataError, match=r"train\.jsonl:2: image media/train_0001\.png"):
        template.encode(rows[1])


def test_prompt_opens_the_answer_after_the_empty_thinking_block(template, processor, tmp_path):
    tones = write_tones(tmp_path / "t", train=1, held_out=0)
    from omni.data import DataOptions, load_datasets

    row = load_datasets(DataOptions(dataset=[str(tones.train)])).train[0]
    prompt = template.encode_prompt(row)
    assert processor.tokenizer.decode(prompt.input_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert set(prompt.extras) == {"input_features", "feature_attention_mask"}
