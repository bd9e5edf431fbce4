"""End to end: LoRA SFT of the embedded SmolLM2 on the identity set teaches it a name it was not trained to
say for these questions; the trained adapter answers held-out phrasings with it, the base model does not."""

from __future__ import annotations

import pytest

NAME, AUTHOR = "Omni Owl", "Acme Labs"


@pytest.mark.slow
def test_identity_sft_answers_held_out_questions_with_the_new_name(omni_cli, tmp_path):
    from omni.infer.engine import GenerationConfig, InferRequest
    from omni.infer.pt_engine import PtEngine
    from omni.models.embedded import smollm2_path
    from omni_plugin_datasets.identity import HELD_OUT_QUESTIONS

    out = tmp_path / "identity"
    # The README's main job: about 50 LoRA steps of 8 short rows.
    argv = ["sft", "--dataset", "identity#200", "--model-name", NAME, "--model-author", AUTHOR, "--padding-free"]
    argv += ["--epochs", "2", "--learning-rate", "5e-4", "--batch-size", "8", "--gradient-checkpointing", "false"]
    argv += ["--save-strategy", "no", "--output-dir", str(out)]
    done = omni_cli(*argv, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]

    engine = PtEngine(str(smollm2_path()), adapters={"identity": str(out)})
    greedy = GenerationConfig(max_new_tokens=40, temperature=0.0)

    def answers(adapter: str | None) -> list[str]:
        requests = [
            InferRequest({"messages": [{"role": "user", "content": q}]}, greedy, adapter=adapter)
            for q in HELD_OUT_QUESTIONS
        ]
        return [r.choices[0].text for r in engine.generate(requests)]

    try:
        before, after = answers(None), answers("identity")
    finally:
        engine.close()
    assert not any(NAME in text for text in before), before
    assert sum(NAME in text for text in after) >= len(HELD_OUT_QUESTIONS) - 1, after
