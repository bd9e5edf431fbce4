"""Multi-turn GRPO with an environment: the calculator environment's step, the rollout's masks and turn limit, and
the one-line errors (on omni.testing's tiny Llama with the llama3 template, whose parser reads Llama 3 calls; the masks on
the tiny Qwen3 with its thinking turns too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omni.api import ParsedAnswer, Row, ToolCall
from omni.cli.main import main
from omni_plugin_grpo.environments.calculator import Calculator, CalculatorError, evaluate
from omni_plugin_grpo.rewards.accuracy import accuracy_reward
from omni_plugin_grpo.rewards.environment import environment_reward

from tests.calculator_task import write_task


@pytest.fixture(scope="module")
def llama3(tiny_model_dir):
    from omni.template import get_template
    from transformers import AutoTokenizer

    return get_template("llama3", AutoTokenizer.from_pretrained(tiny_model_dir))


def test_the_calculator_answers_calls_the_template_parses(llama3):
    text = '{"name": "calculate", "parameters": {"expression": "(7 + 5) * 3 / 8"}}'
    step = Calculator().step(llama3.tool_parser.parse(text))
    assert step.messages == [{"role": "tool", "content": "4.5"}] and step.reward is None and not step.done
    assert Calculator().step(ParsedAnswer("42")).messages == []  # an answer without calls ends the episode
    assert evaluate("2 ** 10 - -3 // 2 % 5") == 1024 - (-3 // 2 % 5)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (ToolCall("calc", {"expression": "1 + 1"}), "error: unknown tool 'calc'; the tool is calculate"),
        (ToolCall("calculate", {"expr": "1 + 1"}), "error: calculate takes an `expression` string"),
        (ToolCall("calculate", {"expression": "1 / 0"}), "error: division by zero"),
        (ToolCall("calculate", {"expression": "7 +"}), "error: cannot read '7 +' as arithmetic"),
        (ToolCall("calculate", {"expression": "9 ** 99999"}), "error: exponent 99999 is above 64"),
        (
            ToolCall("calculate", {"expression": "__import__('os').system('true')"}),
            "error: only numbers, + - * / // % ** and parentheses are allowed, not \"__import__('os').system('true')\"",
        ),
    ],
)
def test_a_bad_call_is_answered_with_an_error_the_model_can_read(call, error):
    assert Calculator().step(ParsedAnswer("", (call,))).messages == [{"role": "tool", "content": error}]


@pytest.mark.parametrize("expression", ["x + 1", "(1).real", "[1, 2]", "True + 1", "'a' * 3"])
def test_anything_but_arithmetic_on_numbers_is_refused(expression):
    with pytest.raises(CalculatorError):
        evaluate(expression)


# Per template: the model's call and its answer as it writes them (Qwen3 thinks first, here briefly), and the
# observation that follows the call (the tool result and the next assistant opening) as the template renders it.
TURNS_AND_OBSERVATION = {
    "llama3": (
        '{"name": "calculate", "parameters": {"expression": "6 * 7"}}',
        "42",
        '<|start_header_id|>ipython<|end_header_id|>\n\n"42"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    ),
    "qwen3": (
        '<think>\nUse the tool.\n</think>\n\n<tool_call>\n{"name": "calculate", "arguments": {"expression": "6 * 7"}}'
        "\n</tool_call>",
        "<think>\n\n</think>\n\n42",
        "\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    ),
}


@pytest.mark.parametrize("template_name", TURNS_AND_OBSERVATION)
def test_observations_are_masked_and_the_models_turns_are_its_own(request, template_name, one_thread):
    """A model turn calling the calculator, then its answer: the observation (env_mask 0, which TRL leaves out of the
    loss) is exactly the template's rendering of the tool result and the next assistant opening, the turns (env_mask
    1) are the model's ids as written, and the whole is the conversation as the template renders it."""
    from omni.api import PtEngine
    from omni.template import get_template
    from omni_plugin_grpo.columns import prompt_messages
    from omni_plugin_grpo.multiturn import EnvironmentRollout, Episode, with_tools
    from omni_plugin_grpo.options import GrpoOptions
    from omni_plugin_grpo.rollout import EngineRollout, encode_prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = request.getfixturevalue({"llama3": "tiny_model_dir", "qwen3": "tiny_qwen3"}[template_name])
    template = get_template(template_name, AutoTokenizer.from_pretrained(model_dir))
    tokenizer, end = template.tokenizer, template.tokenizer.eos_token_id
    row = with_tools(Row({"messages": [{"role": "user", "content": "What is 6 * 7?"}]}, "q.jsonl", 1), Calculator.tools)
    (prompt,), _ = encode_prompts(template, [row])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    single = EngineRollout(PtEngine.from_model(model, tokenizer, template), [prompt], end, GrpoOptions())
    rollout = EnvironmentRollout(single, template, Calculator, max_turns=2, decode=tokenizer.decode)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids + [end]

    call_text, answer_text, observation_text = TURNS_AND_OBSERVATION[template_name]
    thinking = call_text.partition("<tool_call>")[0] if "<tool_call>" in call_text else ""
    episode = Episode(Calculator(), row, prompt, prompt_messages(row))
    call, answer = ids(call_text), ids(answer_text)
    episode.add_turn(call)
    assert rollout.observe(episode, last_turn=False)  # a call: the episode goes on
    observation = episode.completion_ids[len(call) :]
    assert tokenizer.decode(observation) == observation_text
    episode.add_turn(answer)
    assert not rollout.observe(episode, last_turn=False)  # an answer without calls ends it
    assert episode.final_answer == answer_text and accuracy_reward(
        [prompt], [answer_text], final_answer=[answer_text], solution=["42"]
    ) == [1.0]
    assert episode.env_mask == [1] * len(call) + [0] * len(observation) + [1] * len(answer)
    conversation = [
        *prompt_messages(row),
        {"role": "assistant", "content": thinking, "tool_calls": [
            {"type": "function", "function": {"name": "calculate", "arguments": {"expression": "6 * 7"}}}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": answer_text},
    ]  # fmt: skip
    rollout_ids, rendered = (
        prompt + episode.completion_ids,
        template.encode({**row, "messages": conversation}).input_ids,
    )
    # the same ids, up to the newline ChatML writes after the last turn's end, where the model stopped
    assert rendered[: len(rollout_ids)] == rollout_ids and not tokenizer.decode(rendered[len(rollout_ids) :]).strip()


def test_a_rollout_stops_at_max_turns(tiny_model_dir, llama3, one_thread):
    """A real pt-engine rollout of the random tiny Llama with one turn allowed: one model span, no observation."""
    from omni.api import PtEngine
    from omni_plugin_grpo.multiturn import EnvironmentRollout, with_tools
    from omni_plugin_grpo.options import GrpoOptions
    from omni_plugin_grpo.rollout import EngineRollout, encode_prompts
    from transformers import AutoModelForCausalLM

    tokenizer = llama3.tokenizer
    row = with_tools(Row({"messages": [{"role": "user", "content": "What is 6 * 7?"}]}, "q.jsonl", 1), Calculator.tools)
    prompts, _ = encode_prompts(llama3, [row])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    options = GrpoOptions(max_completion_length=16)
    single = EngineRollout(PtEngine.from_model(model, tokenizer, llama3), prompts, tokenizer.eos_token_id, options)
    out = EnvironmentRollout(single, llama3, Calculator, max_turns=1, decode=tokenizer.decode).generate(
        [0, 0], [row, row]
    )
    assert [len(ids) for ids in out.completion_ids] == [len(mask) for mask in out.extras["env_mask"]]
    assert all(set(mask) == {1} and len(mask) <= 16 for mask in out.extras["env_mask"])
    assert out.extras["environment_reward"] == [None, None]  # the calculator gives no reward of its own


def test_the_environment_reward_needs_an_environment():
    with pytest.raises(Exception, match="name one with --environment NAME"):
        environment_reward(["p"], ["c"])
    assert environment_reward(["p", "q"], ["c", "d"], environment_reward=[1.5, None]) == [1.5, None]


def rlhf(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["rlhf", "--algo", "grpo", "--model", str(model), "--dataset", str(data), "--output-dir", str(out),
            "--reward-funcs", "accuracy", "--max-steps", "1", "--num-generations", "2", *extra]  # fmt: skip


def test_an_unknown_environment_is_one_line(tiny_model_dir, tmp_path, capsys):
    assert main(rlhf(tiny_model_dir, tmp_path / "missing.jsonl", tmp_path / "out", "--environment", "calculater")) != 0
    err = capsys.readouterr().err.strip()
    assert err == "omni: error: environment 'calculater' is not installed (installed environments: calculator)"


def test_a_template_without_a_tool_parser_is_one_line(tiny_model_dir, tmp_path, capsys, one_thread):
    _, questions, _ = write_task(tmp_path, sft=1, rl=2, held_out=1)
    # The tiny Llama's own `default` template passes tools to its chat template but reads no calls back.
    assert main(rlhf(tiny_model_dir, questions, tmp_path / "out", "--environment", "calculator")) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "omni: error: --environment calculator: the DefaultTemplate has no tool format to show tools and read the "
        "model's calls; use a template with one (--template qwen3, --template llama3)"
    )
