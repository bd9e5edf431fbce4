"""Image requests on real vLLM: a tiny Idefics3 (SmolVLM's architecture), answered by the vllm engine as the pt
engine answers them, and served to OpenAI `image_url` requests.

Idefics3/SmolVLM is the vision-language family of omni's whose vLLM model runs in vLLM's CPU build here: vLLM's
modules for Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA, LLaVA-OneVision, Gemma 3, InternVL and Mistral 3 import
transformers' torchvision image processors, and torchvision cannot be installed beside this CPU torch build
(docs/serving.md). Its processor wraps each image's tokens in tokens of its own, which the engine must hand to vLLM
as the one `<image>` they were expanded from.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from omni.api import GenerationConfig, InferRequest
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from omni.testing.synthetic import SHAPE_QUESTION, two_image_row, write_shapes

pytest.importorskip("omni_plugin_families", reason="the tiny Idefics3 comes from omni-plugin-families")

KEY = "sk-images"


@pytest.fixture(scope="module")
def idefics3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omni_plugin_families.testing import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), train=2, held_out=6, size=28)


@pytest.fixture(scope="module")
def questions(shapes) -> list[dict]:
    """Held-out shape rows as questions (the answer turn dropped), with absolute paths."""
    rows = [json.loads(line) for line in shapes.held_out.read_text().splitlines()]
    return [{"messages": r["messages"][:1], "images": [str(shapes.directory / i) for i in r["images"]]} for r in rows]


@pytest.fixture(scope="module")
def image_vllm(idefics3: Path) -> Iterator:
    from omni_plugin_vllm.engine import VllmEngine
    from omni_plugin_vllm.options import VllmOptions

    engine = VllmEngine(str(idefics3), options=VllmOptions(enforce_eager=True, limit_mm_per_prompt='{"image": 2}'))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def image_pt(idefics3: Path) -> Iterator:
    from omni.api import PtEngine

    engine = PtEngine(str(idefics3))
    yield engine
    engine.close()


def ask(row: dict, **settings) -> InferRequest:
    return InferRequest(row, GenerationConfig(**{"max_new_tokens": 8, **settings}))


def test_image_answers_equal_the_pt_engines_token_for_token(image_vllm, image_pt, shapes, questions) -> None:
    two_images = two_image_row(shapes, "held_out")
    two_images["messages"] = two_images["messages"][:4]  # up to the second question
    text_only = {"messages": [{"role": "user", "content": "Is the shape red?"}]}
    requests = [ask(row, logprobs=True) for row in [*questions, two_images, text_only]]  # one batch
    ours, theirs = image_vllm.generate(requests), image_pt.generate(requests)
    for request, mine, reference in zip(requests, ours, theirs, strict=True):
        assert mine.choices[0].token_ids == reference.choices[0].token_ids, request.row
        assert mine.prompt_tokens == reference.prompt_tokens  # vLLM expanded each image as the template did
        assert mine.choices[0].logprobs == pytest.approx(reference.choices[0].logprobs, abs=1e-3)
    # The images steer the answers: the same question gets different answers for different images.
    assert len({tuple(answer.choices[0].token_ids) for answer in ours[: len(questions)]}) > 1


def image_part(path: str) -> dict:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def test_serve_answers_openai_image_url_parts(image_vllm, image_pt, questions) -> None:
    app = create_app(image_vllm, ServedModels("tiny-vl"), api_key=KEY, default_max_tokens=8)
    with serving(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        for row in questions[:3]:
            parts = [image_part(row["images"][0]), {"type": "text", "text": SHAPE_QUESTION}]
            answer = client.chat.completions.create(
                model="tiny-vl", messages=[{"role": "user", "content": parts}], max_tokens=8, temperature=0
            )
            expected = image_pt.generate([ask(row)])[0]
            assert answer.choices[0].message.content == expected.choices[0].text
            assert answer.usage.prompt_tokens == expected.prompt_tokens
