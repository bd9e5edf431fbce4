"""Speech output of the tiny Qwen3-Omni with a talker: `omni infer --speak` for every input mix, and `omni serve`
answering OpenAI audio-output requests (whole and streamed) through the official `openai` client."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest
from omni.testing.synthetic import draw_motion, draw_shape, draw_tone, write_video

# code2wav's rate, and the most a spoken answer can last: the talker takes at most 16 codec steps per allowed
# answer token, each step 1/12.5 s of speech.
RATE = 24000
MAX_TOKENS = 3
LONGEST_S = MAX_TOKENS * 16 / 12.5


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """An image, a 1 s tone and a 2 s clip (8 frames at 4 fps) with a tone as its AAC track."""
    import soundfile

    directory = tmp_path_factory.mktemp("speech-media")
    rng = np.random.default_rng(0)
    draw_shape(rng, (220, 40, 40), 64).save(directory / "shape.png")
    soundfile.write(directory / "tone.wav", draw_tone(rng, (150.0, 400.0), 16000, 1.0), 16000, subtype="PCM_16")
    frames = draw_motion(rng, "left", 8, 32)
    write_video(directory / "clip.mp4", frames, fps=4, audio=draw_tone(rng, (150.0, 400.0), 16000, 2.0))
    return directory


MIXES = {
    "text": [],
    "image": ["--image", "shape.png"],
    "audio": ["--audio", "tone.wav"],
    "image+audio": ["--image", "shape.png", "--audio", "tone.wav"],
    "video": ["--video", "clip.mp4"],
    "video+track": ["--video", "clip.mp4", "--use-audio-in-video"],
}


@pytest.mark.parametrize("mix", list(MIXES))
def test_speak_writes_a_wav_for_every_input_mix(talker_dir, media, tmp_path, capsys, mix):
    import soundfile
    from omni.cli.main import main

    flags = [str(media / item) if item.endswith((".png", ".wav", ".mp4")) else item for item in MIXES[mix]]
    spoken = tmp_path / "answer.wav"
    argv = ["infer", "--model", str(talker_dir), "--query", "What is it?", "--speak", str(spoken), *flags]
    assert main([*argv, "--max-new-tokens", str(MAX_TOKENS)]) == 0
    info = soundfile.info(str(spoken))
    assert info.samplerate == RATE and info.channels == 1
    assert 0 < info.duration <= LONGEST_S
    assert f"spoken answer: {spoken} ({info.duration:.2f} s)" in capsys.readouterr().err


def voices(talker_dir):
    import json

    return list(json.loads((talker_dir / "config.json").read_text())["talker_config"]["speaker_id"])


def test_voice_flag_picks_a_voice_and_names_those_there_are(talker_dir, tmp_path, capsys):
    import soundfile
    from omni.cli.main import main

    argv = ["infer", "--model", str(talker_dir), "--query", "Hi", "--speak", str(tmp_path / "a.wav")]
    assert main([*argv, "--voice", "nobody", "--max-new-tokens", "2"]) != 0
    error = capsys.readouterr().err
    assert "--speak: voice 'nobody' is not one of this model's voices: ethan, " in error  # transformers' default first
    assert all(name in error for name in voices(talker_dir))
    assert main([*argv, "--voice", "chelsie", "--max-new-tokens", "2"]) == 0
    assert soundfile.info(str(tmp_path / "a.wav")).frames > 0
