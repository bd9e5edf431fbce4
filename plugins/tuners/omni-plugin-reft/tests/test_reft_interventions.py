"""The ReFT interventions on a tiny model: parameter counts, orthogonality, which positions are edited, generation."""

from __future__ import annotations

import pytest
import torch
from omni.api import IGNORE_INDEX, OmniError
from omni.train.trainer import causal_lm_loss, current_labels
from omni_plugin_lora.options import LoraOptions
from omni_plugin_lora.tuner import LoraTuner
from omni_plugin_reft.interventions import find_interventions, prompt_mask
from omni_plugin_reft.options import ReftOptions, parse_positions
from omni_plugin_reft.tuner import ReftTuner


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omni.testing.models import build_tiny_model

    # A wider init than the default, so that greedy answers differ from prompt to prompt.
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"), initializer_range=0.3)


def _base(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", ["LoreftIntervention", "noreft"])
def test_trainable_parameters_follow_the_formula_and_are_far_fewer_than_lora(model_dir, kind):
    base = _base(model_dir)
    hidden, layers = base.config.hidden_size, base.config.num_hidden_layers
    model = ReftTuner(ReftOptions(reft_rank=4, reft_intervention_type=kind)).prepare(base)
    # Per edited layer: R (r x d), W (r x d), b (r).
    assert _trainable(model) == layers * (2 * 4 * hidden + 4)
    assert all("omni_reft" in n for n, p in model.named_parameters() if p.requires_grad)
    one_layer = ReftTuner(ReftOptions(reft_rank=4, reft_layers=[-1])).prepare(_base(model_dir))
    assert _trainable(one_layer) == 2 * 4 * hidden + 4
    lora = LoraTuner(LoraOptions(lora_rank=8)).prepare(_base(model_dir))
    assert _trainable(lora) >= 10 * _trainable(model)


def test_bad_options_are_one_line_errors(model_dir):
    with pytest.raises(OmniError, match="--reft-positions 'x3'"):
        parse_positions("x3")
    assert parse_positions("f3+l3") == (3, 3) and parse_positions("l1") == (0, 1) and parse_positions("f2") == (2, 0)
    with pytest.raises(OmniError, match="--reft-layers 7: the model has 2 layers"):
        ReftTuner(ReftOptions(reft_layers=[7])).prepare(_base(model_dir))
    with pytest.raises(OmniError, match="choose LoreftIntervention"):
        ReftTuner(ReftOptions(reft_intervention_type="DireftIntervention")).prepare(_base(model_dir))
    with pytest.raises(OmniError, match="--reft-args: unknown keys"):
        ReftTuner(ReftOptions(reft_args='{"low_rank": 3}')).prepare(_base(model_dir))


def test_prompt_positions_from_labels_padding_and_packing():
    # Right-padded training rows: prompts of 4 and 2 tokens, then answers, then padding.
    labels = torch.tensor([[-100, -100, -100, -100, 7, 8], [-100, -100, 5, 6, IGNORE_INDEX, IGNORE_INDEX]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    got = prompt_mask((2, 6), first=1, last=2, attention_mask=mask, labels=labels)
    assert got.int().tolist() == [[1, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]]
    # Left-padded generation prompts: the whole unpadded input is the prompt.
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert prompt_mask((2, 5), first=1, last=1, attention_mask=left).int().tolist() == [
        [0, 0, 1, 0, 1],
        [1, 0, 0, 0, 1],
    ]
    # One padding-free row holding two sequences (positions restart at 0), prompts of 3 and 2 tokens.
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]])
    packed = torch.tensor([[-100, -100, -100, 9, -100, -100, 4, 4]])
    got = prompt_mask((1, 8), first=0, last=2, position_ids=positions, labels=packed)
    assert got.int().tolist() == [[0, 1, 1, 0, 1, 1, 0, 0]]


def test_loreft_rotation_keeps_orthonormal_rows_while_training(model_dir):
    tuner = ReftTuner(ReftOptions(reft_rank=4))
    model = tuner.prepare(_base(model_dir)).train()
    groups = tuner.optimizer_param_groups(model, 1e-2)
    optimizer = torch.optim.AdamW([{"weight_decay": 0.1, **g} for g in groups])
    ids = torch.arange(3, 19)[None]
    labels = ids.clone()
    labels[:, :10] = IGNORE_INDEX
    losses = []
    for _ in range(5):
        loss, _ = causal_lm_loss(model, {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for intervention in find_interventions(model).adapters["default"].interventions.values():
        rotation = intervention.rotation
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(4), atol=1e-5, rtol=0)


def test_only_prompt_positions_are_edited(model_dir):
    base = _base(model_dir)
    ids = torch.arange(3, 19)[None]
    with torch.no_grad():
        before = base(input_ids=ids).logits
    model = ReftTuner(ReftOptions(reft_positions="l2", reft_layers=[1])).prepare(base).eval()
    labels = ids.clone()
    labels[:, :6] = IGNORE_INDEX  # a prompt of 6 tokens: the edit at layer 1 (the last) reaches positions 4 and 5 only
    token = current_labels.set(labels)
    try:
        with torch.no_grad():
            after = model(input_ids=ids).logits
    finally:
        current_labels.reset(token)
    changed = ((after - before).abs().amax(-1) > 1e-6)[0].nonzero().flatten().tolist()
    assert changed == [4, 5]


def _greedy_without_cache(model, prompt: torch.Tensor, steps: int) -> list[int]:
    """Greedy decoding that re-runs the whole sequence each step, with the generated tokens marked as answer."""
    ids = prompt
    for _ in range(steps):
        labels = ids.clone()
        labels[:, : prompt.shape[1]] = IGNORE_INDEX
        token = current_labels.set(labels)
        try:
            with torch.no_grad():
                logits = model(input_ids=ids, use_cache=False).logits
        finally:
            current_labels.reset(token)
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids[0, prompt.shape[1] :].tolist()


def test_generation_edits_the_prompt_once_and_batches_rows_of_any_length(model_dir):
    model = ReftTuner(ReftOptions(reft_positions="f1+l2")).prepare(_base(model_dir)).eval()
    with torch.no_grad():  # a visible, non-trivial edit
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn_like(p))
    prompts = [torch.tensor([[5, 9, 14, 30, 2, 8, 11]]), torch.tensor([[40, 7, 3, 21]])]
    alone = []
    for prompt in prompts:
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
        alone.append(out[0, prompt.shape[1] :].tolist())
        # The cached decode steps see the prompt exactly as the training forward (labels) would.
        assert alone[-1] == _greedy_without_cache(model, prompt, 6)
    pad = 0
    batch = torch.tensor([[5, 9, 14, 30, 2, 8, 11], [pad, pad, pad, 40, 7, 3, 21]])
    mask = (torch.arange(7) >= torch.tensor([[0], [3]])).long()
    out = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=pad)
    assert out[:, 7:].tolist() == alone
    ReftTuner.set_active(model, None)
    bare = model.generate(prompts[0], attention_mask=torch.ones_like(prompts[0]), max_new_tokens=6, do_sample=False)
    assert bare[0, 7:].tolist() != alone[0]


def _perturbed_adapters(model_dir, out) -> dict[str, str]:
    """A LoRA and a ReFT adapter of the same base, with random non-zero weights, saved under `out`."""
    torch.manual_seed(3)
    folders = {}
    for name, tuner in (("lora", LoraTuner(LoraOptions(init_weights="gaussian"))), ("reft", ReftTuner(ReftOptions()))):
        model = tuner.prepare(_base(model_dir))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.3 * torch.randn_like(p))
        tuner.save(model, out / name)
        folders[name] = str(out / name)
    return folders


def test_a_reft_and_a_lora_adapter_served_side_by_side_by_one_engine(model_dir, tmp_path):
    from omni.api import GenerationConfig, InferRequest, PtEngine

    folders = _perturbed_adapters(model_dir, tmp_path)
    prompts = ["What color is the apple?", "Name a number.", "Where is the river?"]

    def answers(engine, adapter):
        requests = [
            InferRequest({"messages": [{"role": "user", "content": p}]}, GenerationConfig(max_new_tokens=8), adapter)
            for p in prompts
        ]
        return [r.choices[0].text for r in engine.generate(requests)]

    alone = {}
    for name, folder in folders.items():
        engine = PtEngine(str(model_dir), adapters={name: folder})
        alone[name] = answers(engine, name)
        alone[None] = answers(engine, None)
        engine.close()
    assert len({tuple(a) for a in alone.values()}) == 3  # each adapter changes the answers
    for order in (["lora", "reft"], ["reft", "lora"]):
        engine = PtEngine(str(model_dir), adapters={name: folders[name] for name in order})
        for adapter in ["reft", None, "lora", "reft"]:
            assert answers(engine, adapter) == alone[adapter], (order, adapter)
        engine.close()


def test_on_smollm2_reft_trains_over_ten_times_fewer_parameters_than_lora_r8():
    """The embedded SmolLM2-135M's shape (built on the meta device: no weights are read)."""
    from omni.models.embedded import smollm2_path
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(smollm2_path())
    counts = {}
    for name, tuner in (("reft", ReftTuner(ReftOptions())), ("lora", LoraTuner(LoraOptions(lora_rank=8)))):
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        counts[name] = _trainable(tuner.prepare(model))
    assert counts["reft"] == config.num_hidden_layers * (2 * 4 * config.hidden_size + 4) == 138_360
    assert counts["lora"] >= 10 * counts["reft"]
