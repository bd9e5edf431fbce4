"""`VllmEngine.load_weights`: the running vLLM model follows a training model, as GRPO rollouts need.

Runs on the session's engine and puts the original weights back at the end.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from omni.api import GenerationConfig, InferRequest, PtEngine

QUESTIONS = ["Hello", "What is the capital of France?", "Tell me a story about a cat."]


def requests(adapter: str | None = None) -> list[InferRequest]:
    config = GenerationConfig(max_new_tokens=16)
    return [InferRequest({"messages": [{"role": "user", "content": q}]}, config, adapter) for q in QUESTIONS]


def token_ids(responses) -> list[list[int]]:
    return [r.choices[0].token_ids for r in responses]


def save_checkpoint(model, base: Path, out: Path) -> Path:
    """`model` saved with `base`'s tokenizer and generation config, loadable by any engine."""
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(base / name, out / name)
    return out


@pytest.fixture
def restore_weights(vllm_engine, tiny_model: Path):
    yield
    from transformers import AutoModelForCausalLM

    vllm_engine.load_weights(AutoModelForCausalLM.from_pretrained(tiny_model))


def test_full_fine_tuning_steps_reach_the_running_engine(vllm_engine, tiny_model, tmp_path, restore_weights) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = token_ids(vllm_engine.generate(requests()))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    batch = tokenizer(["The capital of France is Paris. " * 4], return_tensors="pt")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    vllm_engine.load_weights(model)
    after = token_ids(vllm_engine.generate(requests()))
    reference = PtEngine(str(save_checkpoint(model, tiny_model, tmp_path / "trained")))
    assert after == token_ids(reference.generate(requests()))
    assert after != before


def test_lora_model_is_merged_without_changing_it(
    vllm_engine, tiny_model, make_lora_adapter, tmp_path, restore_weights
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = make_lora_adapter(tiny_model, tmp_path / "lora", seed=11)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), folder, is_trainable=True)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}

    vllm_engine.load_weights(model)
    reference = PtEngine(str(tiny_model), adapters={"trained": str(folder)})
    assert token_ids(vllm_engine.generate(requests())) == token_ids(reference.generate(requests("trained")))
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in state.items())
    assert not any(getattr(module, "merged", False) for module in model.modules())


def test_original_weights_come_back(vllm_engine, pt_engine) -> None:
    # Runs after the tests above restored the checkpoint's weights: the engine answers as before them.
    assert token_ids(vllm_engine.generate(requests())) == token_ids(pt_engine.generate(requests()))
    assert token_ids(vllm_engine.generate(requests("alpha"))) == token_ids(pt_engine.generate(requests("alpha")))


def test_a_weights_file_that_does_not_fit_is_refused_and_the_engine_keeps_answering(vllm_engine, tmp_path):
    """What `omni rollout` hands the engine from a client: names the checkpoint lacks, other shapes, a file that is
    not safetensors. Each is an `OmniError` before vLLM sees it (vLLM's engine process dies on a misfit)."""
    from omni.api import OmniError
    from safetensors.torch import save_file

    before = token_ids(vllm_engine.generate(requests()))
    files = {"unknown": tmp_path / "unknown.safetensors", "shape": tmp_path / "shape.safetensors"}
    save_file({"model.bogus.weight": torch.zeros(3, 3)}, files["unknown"])
    save_file({"model.embed_tokens.weight": torch.zeros(3, 3)}, files["shape"])
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    for path, words in (
        (files["unknown"], "it has no ['model.bogus.weight']"),
        (files["shape"], "model.embed_tokens.weight is [3, 3]"),
        (tmp_path / "junk.safetensors", "not a safetensors file"),
    ):
        with pytest.raises(OmniError, match=re.escape(words)):
            vllm_engine.load_weights_file(str(path))
    assert token_ids(vllm_engine.generate(requests())) == before
