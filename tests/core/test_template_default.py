"""The `default` template: the tokenizer's chat template with exact masks, scopes, system, truncation."""

from __future__ import annotations

import pytest
from omni.data import Row
from omni.errors import DataError
from omni.template import RowTooLongError, TemplateError, TemplateOptions
from omni.template.default import DefaultTemplate
from omni.testing.tokenizers import build_tokenizer

from tests.core.template_helpers import CONVERSATIONS, MULTI_TURN, SINGLE, answers, reference_ids, trained_text

END = {"llama": "<|eot_id|>", "smollm2": "<|im_end|>", "qwen2.5": "<|im_end|>", "qwen3": "<|im_end|>"}


@pytest.mark.parametrize("family", END)
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_ids_match_apply_chat_template_and_mask_answers(family, name):
    tokenizer, messages = build_tokenizer(family), CONVERSATIONS[name]
    encoded = DefaultTemplate(tokenizer).encode({"messages": messages})
    assert encoded.input_ids == reference_ids(tokenizer, messages)
    expected = answers(messages, END[family])
    if family == "qwen3":  # the tokenizer's template writes an empty think block into the last answer
        last = messages[-1]["content"] + END[family]
        expected = expected[: -len(last)] + "<think>\n\n</think>\n\n" + last
    assert trained_text(tokenizer, encoded) == expected


def test_loss_scopes():
    tokenizer = build_tokenizer("smollm2")
    row = {"messages": MULTI_TURN}
    last = DefaultTemplate(tokenizer, TemplateOptions(loss_scope="last")).encode(row)
    assert trained_text(tokenizer, last) == "6<|im_end|>"
    every = DefaultTemplate(tokenizer, TemplateOptions(loss_scope="all")).encode(row)
    assert every.labels == every.input_ids


def test_system_override_replaces_or_adds():
    tokenizer = build_tokenizer("smollm2")
    template = DefaultTemplate(tokenizer, TemplateOptions(system="You are Omni."))
    expected = reference_ids(tokenizer, [{"role": "system", "content": "You are Omni."}, *SINGLE])
    assert template.encode({"messages": SINGLE}).input_ids == expected
    assert template.encode({"messages": [{"role": "system", "content": "old"}, *SINGLE]}).input_ids == expected


def test_encode_prompt_matches_generation_prompt_and_drops_reference_answer():
    tokenizer = build_tokenizer("llama")
    prompt = DefaultTemplate(tokenizer).encode_prompt({"messages": MULTI_TURN})
    assert prompt.input_ids == reference_ids(tokenizer, MULTI_TURN[:-1], add_generation_prompt=True)


def test_enable_thinking_reaches_the_chat_template():
    tokenizer = build_tokenizer("qwen3")
    off = DefaultTemplate(tokenizer, TemplateOptions(enable_thinking=False)).encode_prompt({"messages": SINGLE[:1]})
    assert tokenizer.decode(off.input_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def long_row(question_words: int, answer_words: int) -> Row:
    messages = [
        {"role": "user", "content": "word " * question_words},
        {"role": "assistant", "content": "red " * answer_words},
    ]
    return Row({"messages": messages}, "data.jsonl", 7)


def test_left_truncation_keeps_the_answer():
    tokenizer = build_tokenizer("smollm2")
    full = DefaultTemplate(tokenizer).encode(long_row(200, 5))
    cut = DefaultTemplate(tokenizer, TemplateOptions(max_length=40)).encode(long_row(200, 5))
    assert len(cut) == 40 and cut.input_ids == full.input_ids[-40:]
    assert trained_text(tokenizer, cut) == trained_text(tokenizer, full) == "red " * 5 + "<|im_end|>"


def test_answer_longer_than_max_length_is_a_row_error():
    template = DefaultTemplate(build_tokenizer("smollm2"), TemplateOptions(max_length=40))
    with pytest.raises(
        RowTooLongError, match=r"^data.jsonl:7: its last answer alone is \d+ tokens, over --max-length 40"
    ):
        template.encode(long_row(5, 200))


@pytest.mark.parametrize("truncation", ["error", "right"])
def test_error_and_right_truncation_never_drop_answers(truncation):
    template = DefaultTemplate(build_tokenizer("smollm2"), TemplateOptions(max_length=40, truncation=truncation))
    with pytest.raises(RowTooLongError, match="over --max-length 40"):
        template.encode(long_row(200, 5))


def test_right_truncation_cuts_whole_text_rows():
    options = TemplateOptions(max_length=40, truncation="right", loss_scope="all")
    encoded = DefaultTemplate(build_tokenizer("smollm2"), options).encode(long_row(200, 5))
    assert len(encoded) == 40 and encoded.labels == encoded.input_ids


def test_row_without_answer_or_messages_is_an_error():
    template = DefaultTemplate(build_tokenizer("smollm2"))
    with pytest.raises(DataError, match="^a.jsonl:3: has no assistant answer"):
        template.encode(Row({"messages": SINGLE[:1]}, "a.jsonl", 3))
    with pytest.raises(DataError, match="no messages to render"):
        template.encode({"text": "plain"})


def test_tokenizer_without_chat_template():
    tokenizer = build_tokenizer("smollm2")
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="no chat template; pass --template NAME"):
        DefaultTemplate(tokenizer).encode({"messages": SINGLE})


def test_content_parts_are_accepted():
    tokenizer = build_tokenizer("smollm2")
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}, SINGLE[1]]
    assert DefaultTemplate(tokenizer).encode({"messages": parts}).input_ids == reference_ids(tokenizer, SINGLE)


@pytest.mark.parametrize("family", ["qwen3", "smollm2", "llama"])
def test_answers_found_when_they_repeat_the_question_or_open_the_conversation(family):
    tokenizer = build_tokenizer(family)
    echo = [{"role": "user", "content": "Say OK"}, {"role": "assistant", "content": "OK"},
            {"role": "user", "content": "Say OK again"}, {"role": "assistant", "content": "OK"}]  # fmt: skip
    greeting = [{"role": "assistant", "content": "Welcome!"}, *SINGLE]
    for messages in (echo, greeting):
        encoded = DefaultTemplate(tokenizer).encode({"messages": messages})
        assert encoded.input_ids == reference_ids(tokenizer, messages)
        assert trained_text(tokenizer, encoded).replace("<think>\n\n</think>\n\n", "") == answers(messages, END[family])
