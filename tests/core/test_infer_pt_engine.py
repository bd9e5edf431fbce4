"""The built-in `pt` engine on a tiny random model: determinism, batching, stops, streaming, async, adapters."""

from __future__ import annotations

import asyncio

import pytest
from omni.errors import OmniError
from omni.infer.engine import GenerationConfig, InferRequest
from omni.plugins import load_plugins, using_host

QUESTIONS = ["hello there", "What is the capital of France? Tell me.", "hi", "Tell me a story about a cat."]
GREEDY = GenerationConfig(max_new_tokens=12)


def ask(question: str, config: GenerationConfig = GREEDY, adapter: str | None = None) -> InferRequest:
    return InferRequest({"messages": [{"role": "user", "content": question}]}, config, adapter)


@pytest.fixture(scope="module")
def adapters(tiny_chat_model, make_lora_adapter, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": str(make_lora_adapter(tiny_chat_model, root / "a", seed=1)),
        "b": str(make_lora_adapter(tiny_chat_model, root / "b", seed=2)),
    }


@pytest.fixture(scope="module")
def engine(tiny_chat_model, adapters):
    from omni.infer.options import PtEngineOptions
    from omni.infer.pt_engine import PtEngine

    with using_host(load_plugins({"OMNI_PLUGINS": "lora"})):
        engine = PtEngine(str(tiny_chat_model), adapters=adapters, options=PtEngineOptions(max_batch_size=3))
    yield engine
    engine.close()


def texts(responses):
    return [r.choices[0].text for r in responses]


def test_greedy_is_deterministic_and_prompt_dependent(engine):
    first = engine.generate([ask(q) for q in QUESTIONS])
    second = engine.generate([ask(q) for q in QUESTIONS])
    assert [r.choices[0].token_ids for r in first] == [r.choices[0].token_ids for r in second]
    assert len(set(texts(first))) == len(QUESTIONS)  # the tiny model really reads its prompt
    for response in first:
        assert response.prompt_tokens > 0
        assert response.completion_tokens == len(response.choices[0].token_ids) <= 12


def test_batched_equals_one_by_one(engine):
    batched = engine.generate([ask(q) for q in QUESTIONS])  # 4 requests in batches of at most 3, left-padded
    alone = [engine.generate([ask(q)])[0] for q in QUESTIONS]
    assert [r.choices[0].token_ids for r in batched] == [r.choices[0].token_ids for r in alone]


def test_length_and_stop_strings(engine):
    full = engine.generate([ask(QUESTIONS[1])])[0].choices[0]
    assert full.finish_reason == "length" and len(full.token_ids) == 12
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    cut = engine.generate([ask(QUESTIONS[1], GenerationConfig(max_new_tokens=12, stop=[stop]))])[0].choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]


def test_streaming_adds_up_to_the_whole_answer(engine):
    for question in QUESTIONS[:2]:
        whole = engine.generate([ask(question)])[0].choices[0].text
        assert "".join(engine.stream(ask(question))) == whole
    full = engine.generate([ask(QUESTIONS[1])])[0].choices[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    streamed = "".join(engine.stream(ask(QUESTIONS[1], GenerationConfig(max_new_tokens=12, stop=[stop]))))
    assert streamed == full[: full.index(stop)]


def test_sampling_is_reproducible_with_a_seed(engine):
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, top_k=50, top_p=0.95, seed=7, n=3, logprobs=True)
    first = engine.generate([ask(QUESTIONS[0], config)])[0]
    second = engine.generate([ask(QUESTIONS[0], config)])[0]
    assert len(first.choices) == 3
    assert texts([first]) == texts([second]) and [c.text for c in first.choices] == [c.text for c in second.choices]
    assert len({c.text for c in first.choices}) > 1
    for choice in first.choices:
        assert len(choice.logprobs) == len(choice.token_ids)
        assert all(lp <= 0 for lp in choice.logprobs)


def test_greedy_n_gives_copies(engine):
    response = engine.generate([ask(QUESTIONS[0], GenerationConfig(max_new_tokens=6, n=2))])[0]
    assert len(response.choices) == 2 and response.choices[0].text == response.choices[1].text


def test_async_generation_matches_sync(engine):
    expected = texts(engine.generate([ask(q) for q in QUESTIONS]))

    async def main():
        responses = await asyncio.gather(*(engine.generate_async(ask(q)) for q in QUESTIONS))
        streamed = [piece async for piece in engine.stream_async(ask(QUESTIONS[1]))]
        return texts(responses), "".join(streamed)

    answers, streamed = asyncio.run(main())
    assert answers == expected
    assert streamed == expected[1]


def test_adapters_are_picked_per_request(engine):
    base = texts(engine.generate([ask(q) for q in QUESTIONS]))
    with_a = texts(engine.generate([ask(q, adapter="a") for q in QUESTIONS]))
    with_b = texts(engine.generate([ask(q, adapter="b") for q in QUESTIONS]))
    assert with_a != base and with_b != base and with_a != with_b
    mixed = engine.generate([ask(QUESTIONS[0], adapter="a"), ask(QUESTIONS[0]), ask(QUESTIONS[0], adapter="b")])
    assert texts(mixed) == [with_a[0], base[0], with_b[0]]
    assert "".join(engine.stream(ask(QUESTIONS[1], adapter="a"))) == with_a[1]
    assert texts(engine.generate([ask(q) for q in QUESTIONS])) == base  # switching back leaves the base intact


def test_unknown_adapter_is_an_error(engine):
    with pytest.raises(OmniError, match=r"adapter 'c' is not loaded \(loaded adapters: a, b\)"):
        engine.generate([ask("hi", adapter="c")])


def test_seeded_sampling_gives_the_same_answers_batched_or_alone(engine):
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=11)
    alone = [texts(engine.generate([ask(q, config)]))[0] for q in QUESTIONS[:2]]
    assert texts(engine.generate([ask(q, config) for q in QUESTIONS[:2]])) == alone


def test_an_engine_looks_names_up_in_the_registry_it_was_opened_with(tiny_chat_model):
    """A template only the command's registry has is found; the process's plugin host is not consulted."""
    from omni import hookimpl
    from omni.infer.pt_engine import PtEngine
    from omni.registry import Distribution, TemplateSpec
    from omni.template.options import TemplateCliOptions

    class AcmeTemplates:
        @hookimpl
        def register_templates(self, register):
            register(
                TemplateSpec(
                    name="acme-chat", description="the tokenizer's", impl="omni.template.default:DefaultTemplate"
                )
            )

    command_host = load_plugins({"OMNI_PLUGINS": ""})
    command_host.add(AcmeTemplates(), name="acme", distribution=Distribution("acme-omni-templates", "1.0"))
    chat = TemplateCliOptions(template="acme-chat")
    with using_host(load_plugins({"OMNI_PLUGINS": ""})):
        engine = PtEngine(str(tiny_chat_model), template_options=chat, registry=command_host.registry)
        try:
            assert texts(engine.generate([ask("Hi")]))[0]
        finally:
            engine.close()
        with pytest.raises(OmniError, match="acme-chat"):
            PtEngine(str(tiny_chat_model), template_options=chat)
