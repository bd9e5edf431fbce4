"""--use-audio-in-video: a <video>'s own audio track goes to the audio encoder, laid out as Qwen3-Omni's processor
lays it out (video and audio pads merged in time inside one block) with the thinker's own positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omni.api import DataError, TemplateOptions, load_audio, load_video
from omni.testing.synthetic import draw_motion, draw_tone, write_video

from tests.helpers import qwen3_omni_processor

QUESTION = "<audio>Pitch? <video>Which way?"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 2 s clip (8 frames at 4 fps) with a 2 s tone as its AAC track, the same frames silent, and a WAV clip."""
    import soundfile

    directory = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    frames = draw_motion(rng, "left", 8, 32)
    write_video(directory / "talking.mp4", frames, fps=4, audio=draw_tone(rng, (150.0, 400.0), 16000, 2.0))
    write_video(directory / "silent.mp4", frames, fps=4)
    soundfile.write(directory / "tone.wav", draw_tone(rng, (1000.0, 2000.0), 16000, 1.0), 16000, subtype="PCM_16")
    return directory


def video_row(clips, video="talking.mp4"):
    return {
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "left"}],
        "audios": [str(clips / "tone.wav")],
        "videos": [str(clips / video)],
    }


@pytest.fixture(scope="module")
def hearing(processor):
    from omni.template import get_template

    return get_template("qwen3-omni", processor, TemplateOptions(use_audio_in_video=True))


def test_placeholders_and_audio_features_equal_the_processors(hearing, processor, omni_dir, clips):
    from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths

    encoded = hearing.encode(video_row(clips))
    extras = encoded.extras
    # The audio slots in tag order: the WAV clip, then the video's track, decoded as the video encoder decodes it.
    track = load_video(str(clips / "talking.mp4"), with_audio=True).audio
    clip = load_audio(str(clips / "tone.wav"))
    reference = qwen3_omni_processor(omni_dir)
    features = reference.feature_extractor(
        [clip, track], sampling_rate=16000, padding="longest", return_attention_mask=True, return_tensors="pt"
    )
    torch.testing.assert_close(extras["input_features"], features["input_features"], rtol=1e-4, atol=1e-4)
    assert extras["feature_attention_mask"].tolist() == features["attention_mask"].tolist()

    # transformers' own placeholder expansion for use_audio_in_video=True, given the same grids and audio lengths.
    lengths = _get_feat_extract_output_lengths(features["attention_mask"].sum(-1), 50)
    text = "<|audio_start|><|audio_pad|><|audio_end|>Pitch? <|vision_start|><|video_pad|><|vision_end|>Which way?"
    (expected,) = reference.replace_multimodal_special_tokens(
        [text],
        iter(lengths),
        iter([]),
        iter(extras["video_grid_thw"]),
        iter(extras["video_second_per_grid"].tolist()),
        use_audio_in_video=True,
        position_id_per_seconds=processor.config.position_id_per_seconds,
        seconds_per_chunk=2.0,
    )
    expected_ids = reference.tokenizer(expected)["input_ids"]
    ids = encoded.input_ids
    start = ids.index(expected_ids[0])
    assert ids[start : start + len(expected_ids)] == expected_ids
    video_id, audio_id = processor.config.video_token_id, processor.config.audio_token_id
    block = ids[ids.index(processor.config.vision_start_token_id) :]
    assert block[1] == processor.config.audio_start_token_id  # the video block opens both streams
    between = block[: block.index(reference.tokenizer.convert_tokens_to_ids("<|audio_end|>"))]
    last_video = len(between) - 1 - between[::-1].index(video_id)
    assert between.index(video_id) < between.index(audio_id) < last_video  # interleaved in time, not appended

    # The frames are the same as without the track.
    from omni.template import get_template

    without = get_template("qwen3-omni", processor, TemplateOptions()).encode(video_row(clips))
    torch.testing.assert_close(extras["pixel_values_videos"], without.extras["pixel_values_videos"])
    assert without.input_ids.count(audio_id) == int(lengths[0])  # only the WAV clip is heard without the flag
    assert ids.count(audio_id) == int(lengths.sum())


def test_positions_are_the_ones_the_thinker_computes_for_audio_in_video(hearing, omni_dir, clips):
    from omni.api import get_registry, load_model
    from omni.train.options import TrainOptions

    encoded = hearing.encode(video_row(clips))
    media = {k: v for k, v in encoded.extras.items() if k != "position_ids"}
    model = load_model(TrainOptions(model=str(omni_dir)), get_registry()).model.eval()
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        ours = model(input_ids=ids, position_ids=encoded.extras["position_ids"][:, None], **media).logits
        own = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_audio_in_video=True, **media).logits
        other = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_audio_in_video=False, **media).logits
    torch.testing.assert_close(ours, own, rtol=0, atol=1e-6)
    assert not torch.allclose(ours, other, atol=1e-3)  # the flag changes the positions, and the thinker sees it
    # Generation lays out positions itself; the prompt tells it that videos carry their audio.
    assert hearing.encode_prompt(video_row(clips)).extras["use_audio_in_video"] is True


def test_a_video_without_an_audio_track_names_the_row_and_file(hearing, clips):
    from omni.api import Row

    with pytest.raises(DataError, match=r"rows\.jsonl:3: video .*silent\.mp4 has no audio track"):
        hearing.encode(Row(video_row(clips, "silent.mp4"), "rows.jsonl", 3))


def test_infer_from_the_cli_hears_the_track(omni_cli, omni_dir, clips):
    from omni.api import GenerationConfig, InferRequest, PtEngine, TemplateCliOptions

    argv = ["infer", "--model", str(omni_dir), "--video", str(clips / "talking.mp4"), "--query", "Which way?"]
    heard = omni_cli(*argv, "--use_audio_in_video", "--max-new-tokens", "4")
    assert heard.returncode == 0, heard.stderr
    engine = PtEngine(str(omni_dir), template_options=TemplateCliOptions(use_audio_in_video=True))
    row = {"messages": [{"role": "user", "content": "<video>Which way?"}], "videos": [str(clips / "talking.mp4")]}
    assert heard.stdout == engine.generate([InferRequest(row, GenerationConfig(4))])[0].choices[0].text + "\n"


def test_tones_heard_only_in_videos_tracks_are_learned(omni_dir, tmp_path):
    """Every clip shows the same grey frames under the same question, so only the audio track tells "high"
    from "low": the thinker learns it through `omni sft --use-audio-in-video` and answers held-out clips.

    Measured: the loss leaves its 50/50 plateau (0.24) near step 100 and ends at 0.003; 16/16 held out.
    """
    import json

    from omni.cli.main import main
    from omni.testing.synthetic import write_video_tones

    clips = write_video_tones(tmp_path / "clips", train=64, held_out=16)
    out, answers = tmp_path / "run", tmp_path / "answers.jsonl"
    argv = ["sft", "--model", str(omni_dir), "--dataset", str(clips.train), "--output-dir", str(out)]
    argv += ["--use-audio-in-video", "--tuner", "full", "--per-device-train-batch-size", "8"]
    argv += ["--learning-rate", "2e-3", "--lr-scheduler-type", "constant", "--warmup-ratio", "0"]
    argv += ["--weight-decay", "0", "--gradient-checkpointing", "false", "--save-strategy", "no"]
    assert main([*argv, "--num-train-epochs", "30", "--logging-steps", "16"]) == 0
    argv = ["infer", "--model", str(out), "--input", str(clips.held_out), "--output", str(answers)]
    assert main([*argv, "--use_audio_in_video", "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert sum(row["response"].strip() == row["solution"] for row in rows) / len(rows) >= 0.9  # chance: 0.5
