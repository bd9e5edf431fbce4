"""``--reward-model PATH --reward-model-plugin genrm``: a chat model asked to grade each completion (a generative
judge), through omni's pt engine; its answer's first number, out of `JUDGE_SCALE`, is the reward."""

from __future__ import annotations

import re
from typing import Any

from omni.api import GenerationConfig, InferRequest, ModelOptions, Registry

JUDGE_SCALE = 10
JUDGE_PROMPT = (
    f"Rate the answer to the question from 0 to {JUDGE_SCALE}, where {JUDGE_SCALE} is best. "
    "Reply with the number only.\n\nQuestion: {question}\n\nAnswer: {answer}"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def judge_prompt(prompt: list[dict[str, Any]], completion: Any) -> str:
    """The question put to the judge: the prompt's last user turn and the completion's text."""
    question = next((m.get("content", "") for m in reversed(prompt) if m.get("role") == "user"), "")
    answer = completion[-1].get("content", "") if isinstance(completion, list) else completion
    return JUDGE_PROMPT.format(question=question, answer=answer)


def judged_score(reply: str) -> float | None:
    """The judge's first number as a share of `JUDGE_SCALE` (clipped to 0..1); None when it gave no number."""
    found = _NUMBER.search(reply)
    return min(max(float(found.group()) / JUDGE_SCALE, 0.0), 1.0) if found else None


class GenerativeJudgeReward:
    """Scores completions by asking the model at `path` (greedy, through the pt engine, with its own template)."""

    def __init__(self, path: str, registry: Registry, max_new_tokens: int = 8) -> None:
        engine = registry.get("engines", "pt").spec
        self.engine = engine.load()(
            path,
            options=engine.default_options(),
            model_options=ModelOptions(model=path),
            template_options=None,
            registry=registry,
        )
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """One score per completion, None where the judge's reply holds no number (TRL then leaves it out)."""
        requests = [
            InferRequest(
                row={"messages": [{"role": "user", "content": judge_prompt(p, c)}]}, generation=self.generation
            )
            for p, c in zip(prompts, completions, strict=True)
        ]
        return [judged_score(response.choices[0].text) for response in self.engine.generate(requests)]
