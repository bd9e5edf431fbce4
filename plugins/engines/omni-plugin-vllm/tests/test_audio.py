"""Audio requests on real vLLM: a tiny Qwen2-Audio, answered by the vllm engine as the pt engine answers them.

Qwen2-Audio is the audio model vLLM's CPU build runs here (images: test_images.py); vLLM's Qwen2.5-Omni and
Qwen3-Omni modules import torchvision, which cannot be installed beside this CPU torch build (docs/serving.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from omni.api import GenerationConfig, InferRequest, InferResponse, StreamDelta
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.testing.synthetic import write_tones

KEY = "sk-audio"


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights drawn wide enough (0.3) that greedy answers differ from clip to clip."""
    from omni_plugin_qwen2_audio.testing import build_tiny_qwen2_audio

    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"), initializer_range=0.3)


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Held-out tone rows as questions (the answer turn dropped), with absolute paths."""
    written = write_tones(tmp_path_factory.mktemp("tones"), train=2, held_out=6)
    rows = [json.loads(line) for line in written.held_out.read_text().splitlines()]
    return [
        {"messages": row["messages"][:1], "audios": [str(written.directory / a) for a in row["audios"]]} for row in rows
    ]


@pytest.fixture(scope="module")
def audio_vllm(audio_model: Path) -> Iterator:
    from omni_plugin_vllm.engine import VllmEngine
    from omni_plugin_vllm.options import VllmOptions

    options = VllmOptions(enforce_eager=True, limit_mm_per_prompt='{"audio": 2}')
    engine = VllmEngine(str(audio_model), options=options)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def audio_pt(audio_model: Path) -> Iterator:
    from omni.api import PtEngine

    engine = PtEngine(str(audio_model))
    yield engine
    engine.close()


# Full fine-tuning of the tiny model from random weights (0.3M parameters): constant rate, no warm-up.
TRAIN_FLAGS = (
    "--tuner", "full", "--per-device-train-batch-size", "8", "--learning-rate", "4e-3",
    "--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--weight-decay", "0",
    "--gradient-checkpointing", "false", "--save-strategy", "no", "--num-train-epochs", "10",
)  # fmt: skip


@pytest.mark.slow
def test_trained_model_answers_held_out_tones_through_the_cli(tmp_path: Path) -> None:
    """`omni sft` teaches the tiny Qwen2-Audio high vs low; `omni infer --infer-backend vllm` then answers
    held-out tones it never heard (chance is 50%) with exactly the pt engine's answers.

    First in this file, so it runs before the module's engine starts."""
    from omni.cli.main import main
    from omni_plugin_qwen2_audio.testing import build_tiny_qwen2_audio

    from tests.helpers import run_omni

    base = build_tiny_qwen2_audio(tmp_path / "base")
    data = write_tones(tmp_path / "tones", train=32, held_out=16)
    trained = tmp_path / "trained"
    argv = ["sft", "--model", str(base), "--dataset", str(data.train), "--output-dir", str(trained), *TRAIN_FLAGS]
    assert main(argv) == 0

    answers = {}
    for backend in ("pt", "vllm"):
        out = tmp_path / f"{backend}.jsonl"
        argv = ["infer", "--model", str(trained), "--input", str(data.held_out), "--output", str(out)]
        argv += ["--max-new-tokens", "4", "--infer-backend", backend]
        result = run_omni(*argv, *(["--enforce-eager"] if backend == "vllm" else []), timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        answers[backend] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["response"] for row in answers["vllm"]] == [row["response"] for row in answers["pt"]]
    correct = sum(row["response"].strip() == row["solution"] for row in answers["vllm"])
    assert correct >= 14, answers["vllm"]  # of 16


def ask(row: dict, **settings) -> InferRequest:
    return InferRequest(row, GenerationConfig(**{"max_new_tokens": 12, **settings}))


def test_audio_answers_equal_the_pt_engines_token_for_token(audio_vllm, audio_pt, tones) -> None:
    two_clips = {
        "messages": [{"role": "user", "content": "<audio>First, then <audio>second: which is higher?"}],
        "audios": [tones[0]["audios"][0], tones[1]["audios"][0]],
    }
    text_only = {"messages": [{"role": "user", "content": "Is a tone high or low?"}]}
    requests = [ask(row, logprobs=True) for row in [*tones, two_clips, text_only]]  # one batch, as a server sees
    ours, theirs = audio_vllm.generate(requests), audio_pt.generate(requests)
    for request, mine, reference in zip(requests, ours, theirs, strict=True):
        assert mine.choices[0].token_ids == reference.choices[0].token_ids, request.row
        assert mine.choices[0].text == reference.choices[0].text
        assert mine.prompt_tokens == reference.prompt_tokens  # vLLM expanded each clip to the template's count
        assert mine.choices[0].logprobs == pytest.approx(reference.choices[0].logprobs, abs=1e-3)
    # The clips steer the answers: the same question gets different answers for different tones.
    assert len({tuple(answer.choices[0].token_ids) for answer in ours[: len(tones)]}) > 1
    assert ours[len(tones)].prompt_tokens > ours[0].prompt_tokens + 20  # two clips' placeholders


def test_streamed_audio_answer_adds_up_to_the_whole(audio_vllm, tones) -> None:
    request = ask(tones[2], max_new_tokens=16)
    whole = audio_vllm.generate([request])[0]

    async def collect() -> list[StreamDelta | InferResponse]:
        return [item async for item in audio_vllm.stream_deltas_async(request)]

    *deltas, response = asyncio.run(collect())
    assert "".join(d.text for d in deltas) == whole.choices[0].text == response.choices[0].text
    assert len([d for d in deltas if d.text]) > 1


def wav_part(path: str) -> dict:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def test_serve_answers_openai_input_audio_parts(audio_vllm, audio_pt, tones) -> None:
    app = create_app(audio_vllm, ServedModels("tiny-audio"), api_key=KEY, default_max_tokens=12)
    with serving(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        for row in tones[:3]:
            parts = [wav_part(row["audios"][0]), {"type": "text", "text": "Is this tone high or low?"}]
            answer = client.chat.completions.create(
                model="tiny-audio", messages=[{"role": "user", "content": parts}], max_tokens=12, temperature=0
            )
            expected = audio_pt.generate([ask(row)])[0]
            assert answer.choices[0].message.content == expected.choices[0].text
            assert answer.usage.prompt_tokens == expected.prompt_tokens
        # An image sent to this audio-only model is the client's mistake: a 400 that says so, and serving goes on.
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        with pytest.raises(openai.BadRequestError, match="audio only"):
            client.chat.completions.create(model="tiny-audio", messages=[{"role": "user", "content": [image]}])
        parts = [wav_part(tones[0]["audios"][0]), {"type": "text", "text": "Is this tone high or low?"}]
        streamed = client.chat.completions.create(
            model="tiny-audio", messages=[{"role": "user", "content": parts}], max_tokens=12, temperature=0, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
        assert text == audio_pt.generate([ask(tones[0])])[0].choices[0].text
