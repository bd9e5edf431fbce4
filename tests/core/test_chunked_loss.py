"""The chunked cross-entropy (--loss-chunk-tokens) gives the plain loss and the same gradients, on padded and
padding-free batches, under full tuning, LoRA (lm_head included) and the sequence-parallel shard loss."""

from __future__ import annotations

import pytest
import torch
from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX
from omni.train.collators import PaddingCollator, PaddingFreeCollator
from omni.train.trainer import causal_lm_loss, sequence_shard_loss

TOLERANCE = 1e-5
CHUNK = 4  # fewer than the batches' targets, and not a divisor of them: several chunks and a ragged last one
# More than the 19 targets but fewer than the padded batch's 3 x 11 positions: one chunk of the real targets.
ONE_CHUNK = 25


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, attn_implementation="sdpa",
    )  # fmt: skip
    return LlamaForCausalLM(config)


def _rows(lengths=(7, 12, 9), prompt=3):
    g = torch.Generator().manual_seed(1)
    rows = []
    for n in lengths:
        ids = torch.randint(1, 96, (n,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return rows


def _loss_and_grads(model, batch, chunk_tokens):
    """The loss, the gradients of every trainable parameter, and that of the last hidden states."""
    model.zero_grad()
    hidden = {}

    def keep(module, args, output):
        output.retain_grad()
        hidden["states"] = output

    handle = model.get_decoder().norm.register_forward_hook(keep)
    try:
        loss, _ = causal_lm_loss(
            model, {k: v for k, v in batch.items() if k != "num_tokens"}, chunk_tokens=chunk_tokens
        )
    finally:
        handle.remove()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, hidden["states"].grad.clone()


def _assert_same(model, batch, chunk_tokens=CHUNK):
    plain_loss, plain_grads, plain_hidden = _loss_and_grads(model, batch, chunk_tokens=0)
    loss, grads, hidden = _loss_and_grads(model, batch, chunk_tokens=chunk_tokens)
    assert torch.allclose(loss, plain_loss, atol=TOLERANCE, rtol=0)
    assert grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, plain_grads[name], atol=TOLERANCE, rtol=0), name
    assert torch.allclose(hidden, plain_hidden, atol=TOLERANCE, rtol=0)
    return plain_grads


@pytest.mark.parametrize("chunk_tokens", [CHUNK, ONE_CHUNK])
@pytest.mark.parametrize("collator", [PaddingCollator(pad_token_id=0), PaddingFreeCollator()], ids=["padded", "free"])
def test_full_tuning_gradients_equal_the_plain_loss(collator, chunk_tokens):
    model = _llama()
    grads = _assert_same(model, collator(_rows()), chunk_tokens)
    assert grads["lm_head.weight"].abs().sum() > 0


def test_lora_on_lm_head_trains_the_same_through_chunks():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        _llama(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False)
    )
    grads = _assert_same(model, PaddingFreeCollator()(_rows()))
    head_lora = [name for name in grads if "lm_head" in name and "lora_A" in name]
    assert head_lora and grads[head_lora[0]].abs().sum() > 0


def test_batches_within_one_chunk_take_the_plain_path_and_keep_their_logits():
    model = _llama()
    batch = PaddingCollator(pad_token_id=0)(_rows())
    del batch["num_tokens"]
    _, plain = causal_lm_loss(model, dict(batch), chunk_tokens=10_000)
    _, chunked = causal_lm_loss(model, dict(batch), chunk_tokens=CHUNK)
    _, one_chunk = causal_lm_loss(model, dict(batch), chunk_tokens=ONE_CHUNK)
    assert plain.logits.shape[-1] == 96 and plain.logits.shape[1] > 0
    assert chunked.logits.shape[1] == one_chunk.logits.shape[1] == 0  # never materialised for every position


def test_sequence_shard_loss_equals_its_plain_loss(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _llama()
        batch = PaddingCollator(pad_token_id=0)(_rows())
        shift = torch.full_like(batch["labels"], IGNORE_INDEX)
        shift[:, :-1] = batch["labels"][:, 1:]
        shard = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "shift_labels": shift}
        losses, grads = [], []
        for chunk_tokens in (0, CHUNK):
            model.zero_grad()
            loss, _ = sequence_shard_loss(model, dict(shard), data_parallel=1, chunk_tokens=chunk_tokens)
            loss.backward()
            losses.append(loss.detach())
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    finally:
        dist.destroy_process_group()
    assert torch.allclose(losses[0], losses[1], atol=TOLERANCE, rtol=0)
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=TOLERANCE, rtol=0), name


def test_models_that_transform_logits_after_the_head_are_refused():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, final_logit_softcapping=30.0,
    )  # fmt: skip
    batch = PaddingCollator(pad_token_id=0)(_rows())
    del batch["num_tokens"]
    with pytest.raises(OmniError, match="final_logit_softcapping.*--loss-chunk-tokens 0"):
        causal_lm_loss(Gemma2ForCausalLM(config), dict(batch), chunk_tokens=CHUNK)
