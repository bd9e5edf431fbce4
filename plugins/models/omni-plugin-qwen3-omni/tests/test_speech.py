"""Speech output of the tiny Qwen3-Omni with a talker: `omni infer --speak` for every input mix, and `omni serve`
answering OpenAI audio-output requests (whole and streamed) through the official `openai` client."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest
from omni.testing.synthetic import draw_motion, draw_shape, draw_tone, write_video

from tests.helpers import run_omni

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


@pytest.mark.parametrize("hearing", [False, True], ids=["image+audio", "video+track"])
def test_the_talker_gets_its_own_positions_with_the_thinkers_audio_window(talker_dir, media, hearing):
    """The Speaker lays out the talker's rotary positions with the thinker's rule: the same positions the talker's
    own rule gives once its config has the audio window it reads (transformers' talker config lacks it)."""
    import torch
    import transformers
    from omni.api import TemplateOptions
    from omni.template import get_template
    from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor
    from omni_plugin_qwen3_omni.speech import Speaker

    template = get_template(
        "qwen3-omni", Qwen3OmniProcessor.from_pretrained(talker_dir), TemplateOptions(use_audio_in_video=hearing)
    )
    if hearing:
        row = {"messages": [{"role": "user", "content": "<video>What is it?"}], "videos": [str(media / "clip.mp4")]}
    else:
        row = {"messages": [{"role": "user", "content": "<image><audio>What is it?"}]}
        row.update(images=[str(media / "shape.png")], audios=[str(media / "tone.wav")])
    prompt = template.encode_prompt(row)
    ids, media_tensors = torch.tensor([prompt.input_ids]), prompt.extras
    arguments = (
        ids,
        media_tensors.get("image_grid_thw"),
        media_tensors.get("video_grid_thw"),
        torch.ones_like(ids),
        hearing,
        media_tensors["feature_attention_mask"].sum(-1),
        media_tensors.get("video_second_per_grid"),
    )
    whole = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(talker_dir)
    own_rule = type(whole.talker).get_rope_index
    with pytest.raises(AttributeError, match="audio_config"):
        own_rule(whole.talker, *arguments)
    Speaker(whole)
    ours = whole.talker.get_rope_index(*arguments)
    whole.talker.config.audio_config = whole.config.thinker_config.audio_config
    expected = own_rule(whole.talker, *arguments)
    assert torch.equal(ours[0], expected[0]) and torch.equal(ours[1], expected[1])


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


def inline(path):
    return base64.b64encode(path.read_bytes()).decode()


def data_uri(path, mime):
    return f"data:{mime};base64,{inline(path)}"


@pytest.fixture(scope="module")
def speech_engine(talker_dir):
    from omni.api import PtEngine

    engine = PtEngine(str(talker_dir))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def client(speech_engine):
    import openai
    from omni.serve.app import ServedModels, create_app
    from omni.serve.background import serving

    with serving(create_app(speech_engine, ServedModels("omni"), default_max_tokens=16)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def picture_and_question(media):
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_uri(media / "shape.png", "image/png")}},
                {"type": "input_audio", "input_audio": {"data": inline(media / "tone.wav"), "format": "wav"}},
                {"type": "text", "text": "Answer the spoken question about the picture."},
            ],
        }
    ]


def test_serve_answers_in_speech_whole_and_streamed(client, media):
    """An image+audio question with modalities text+audio: a WAV that decodes, its transcript; streamed, the same
    transcript in pieces and pcm16 pieces of speech at 24 kHz."""
    spoken = {"modalities": ["text", "audio"], "max_tokens": MAX_TOKENS, "temperature": 0}
    messages = picture_and_question(media)
    whole = client.chat.completions.create(
        model="omni", messages=messages, audio={"voice": "ethan", "format": "wav"}, **spoken
    )
    message = whole.choices[0].message
    assert message.content is None and message.audio.id.startswith("audio_")
    assert 0 < whole.usage.completion_tokens <= MAX_TOKENS and whole.usage.prompt_tokens > 0
    with wave.open(io.BytesIO(base64.b64decode(message.audio.data))) as file:
        assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (RATE, 1, 2)
        frames = file.getnframes()
    assert 0 < frames <= LONGEST_S * RATE

    stream = client.chat.completions.create(
        model="omni",
        messages=messages,
        audio={"voice": "ethan", "format": "pcm16"},
        stream=True,
        stream_options={"include_usage": True},
        **spoken,
    )
    transcript, samples, finish, usage = "", b"", None, None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        audio = chunk.choices[0].delta.audio
        if audio is not None:
            piece = audio.model_dump(exclude_none=True)
            transcript += piece.get("transcript", "")
            samples += base64.b64decode(piece.get("data", ""))
        finish = chunk.choices[0].finish_reason or finish
    assert transcript == message.audio.transcript  # greedy: the same answer, told in pieces
    assert finish == whole.choices[0].finish_reason and usage.completion_tokens == whole.usage.completion_tokens
    streamed = np.frombuffer(samples, dtype="<i2")
    # The same speech, decoded a second at a time: each piece's causal decoding ends a few hundred samples short.
    assert abs(len(streamed) - frames) <= 0.05 * frames


def spoken_error(client, **request):
    import openai

    settings = {"model": "omni", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(**{**settings, "modalities": ["text", "audio"], **request})
    return raised.value.body


def test_audio_requests_the_model_cannot_answer_are_400s_naming_the_parameter(client, talker_dir, omni_dir):
    import openai
    from omni.api import PtEngine
    from omni.serve.app import ServedModels, create_app
    from omni.serve.background import serving

    wav = {"voice": "ethan", "format": "wav"}
    unknown = spoken_error(client, audio={"voice": "alloy", "format": "wav"})
    assert unknown["param"] == "audio.voice" and unknown["message"].startswith("unknown voice 'alloy'; this model's")
    assert all(name in unknown["message"] for name in voices(talker_dir))
    assert spoken_error(client, audio={"voice": "ethan", "format": "mp3"})["param"] == "audio.format"
    assert spoken_error(client, audio=wav, stream=True)["param"] == "audio.format"  # streams are pcm16
    assert spoken_error(client)["param"] == "audio"
    assert spoken_error(client, audio=wav, n=2)["param"] == "n"
    assert client.chat.completions.create(model="omni", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)

    text_only = PtEngine(str(omni_dir))
    try:
        with serving(create_app(text_only, ServedModels("omni"))) as url:
            other = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            refused = spoken_error(other, audio=wav)
    finally:
        text_only.close()
    assert refused["param"] == "modalities" and "answers in text only" in refused["message"]


def test_requests_choose_whether_videos_are_heard(client, media):
    """use_audio_in_video (or vLLM's mm_processor_kwargs) per request: with it the clip's track is in the
    prompt (more prompt tokens), and the answer is spoken."""
    video = {"type": "video_url", "video_url": {"url": data_uri(media / "clip.mp4", "video/mp4")}}
    messages = [{"role": "user", "content": [video, {"type": "text", "text": "What do you hear?"}]}]

    def prompt_tokens(**extra):
        answer = client.chat.completions.create(model="omni", messages=messages, max_tokens=1, extra_body=extra)
        return answer.usage.prompt_tokens

    silent = prompt_tokens()
    assert prompt_tokens(use_audio_in_video=True) == prompt_tokens(mm_processor_kwargs={"use_audio_in_video": True})
    assert prompt_tokens(use_audio_in_video=True) > silent == prompt_tokens(use_audio_in_video=False)
    spoken = client.chat.completions.create(
        model="omni",
        messages=messages,
        max_tokens=MAX_TOKENS,
        modalities=["text", "audio"],
        audio={"voice": "chelsie", "format": "wav"},
        extra_body={"use_audio_in_video": True},
    )
    with wave.open(io.BytesIO(base64.b64decode(spoken.choices[0].message.audio.data))) as file:
        assert file.getframerate() == RATE and file.getnframes() > 0


@pytest.mark.slow
def test_a_merged_lora_keeps_the_talker_and_speaks(talker_dir, media, tmp_path, capsys):
    """`omni sft --tuner lora` trains the thinker of the checkpoint with a talker; `omni export --merge-lora`
    saves the merged thinker beside the untouched talker and code2wav, and the merged folder answers and speaks
    as the base with the adapter does (docs/multimodal.md's `--adapters ... --speak` example)."""
    import soundfile
    import torch
    from omni.cli.main import main
    from omni.testing.synthetic import write_shapes
    from safetensors.torch import load_file

    shapes = write_shapes(tmp_path / "shapes", train=8, held_out=0)
    adapter, merged = tmp_path / "lora", tmp_path / "merged"
    argv = ["sft", "--model", str(talker_dir), "--dataset", str(shapes.train), "--output-dir", str(adapter)]
    argv += ["--tuner", "lora", "--max-steps", "2", "--per-device-train-batch-size", "4", "--learning-rate", "5e-2"]
    argv += ["--save-strategy", "no", "--gradient-checkpointing", "false", "--warmup-ratio", "0"]
    # Training and merging run as a user runs them, each in a fresh process.
    export = [
        "export",
        "--model",
        str(talker_dir),
        "--adapters",
        str(adapter),
        "--merge-lora",
        "--output-dir",
        str(merged),
    ]
    for command in (argv, export):
        done = run_omni(*command, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    before, after = load_file(str(talker_dir / "model.safetensors")), load_file(str(merged / "model.safetensors"))
    assert set(after) == set(before)  # the thinker, the talker and code2wav, under their own names
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("thinker.model.layers.") and "self_attn" in name for name in changed)

    question = ["--image", str(media / "shape.png"), "--query", "What colour is the shape?", "--max-new-tokens", "4"]
    capsys.readouterr()
    spoken = {"base": tmp_path / "adapter.wav", "merged": tmp_path / "merged.wav"}
    assert (
        main(
            ["infer", "--model", str(talker_dir), "--adapters", str(adapter), *question, "--speak", str(spoken["base"])]
        )
        == 0
    )
    with_adapter = capsys.readouterr().out
    assert main(["infer", "--model", str(merged), *question, "--speak", str(spoken["merged"])]) == 0
    assert capsys.readouterr().out == with_adapter
    for wav in spoken.values():
        info = soundfile.info(str(wav))
        assert info.samplerate == RATE and info.frames > 0
