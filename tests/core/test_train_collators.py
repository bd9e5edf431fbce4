"""Padding-free and packed batches train exactly like padded ones, and never attend across sequences."""

from __future__ import annotations

import pytest
import torch
from omni.errors import OmniError
from omni.template.base import IGNORE_INDEX
from omni.train import packed_attention
from omni.train.collators import PaddingCollator, PaddingFreeCollator, pack_rows
from omni.train.packed_attention import PACKED_SDPA, use_packed_attention
from omni.train.trainer import causal_lm_loss

# float32 on CPU: the padded and padding-free paths differ only in summation order.
TOLERANCE = 1e-5


def _llama(attn_implementation="sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    if attn_implementation == PACKED_SDPA:
        assert use_packed_attention(model)
    return model


# Every test runs with transformers' SDPA (one block-diagonal mask) and with omni's per-sequence SDPA.
@pytest.fixture(scope="module", params=["sdpa", PACKED_SDPA])
def model(request):
    return _llama(request.param)


def _rows(lengths=(5, 11, 8), prompt=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(1, 64, (n,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return rows


def _loss(model, batch, num_items=None):
    with torch.no_grad():
        return causal_lm_loss(model, dict(batch), num_items)[0]


def test_padding_free_loss_equals_padded_and_reference_loss(model):
    rows = _rows()
    padded = PaddingCollator(pad_token_id=0)(rows)
    flat = PaddingFreeCollator()(rows)
    assert flat["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    assert flat["position_ids"][0].tolist() == [p for r in rows for p in range(len(r["input_ids"]))]
    assert flat["num_tokens"] == padded["num_tokens"] == flat["input_ids"].shape[1]
    with torch.no_grad():  # transformers' own loss on the padded batch, all logits computed
        reference = model(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"], labels=padded["labels"]
        ).loss
    assert _loss(model, padded).item() == pytest.approx(reference.item(), abs=TOLERANCE)
    assert _loss(model, flat).item() == pytest.approx(reference.item(), abs=TOLERANCE)


def test_packed_sequences_do_not_attend_to_each_other(model):
    a, b = _rows((7, 9))
    changed_a = {**a, "input_ids": [(t % 63) + 1 for t in reversed(a["input_ids"])]}
    collate = PaddingFreeCollator()
    with torch.no_grad():
        logits = [
            # use_cache=False as in training: with a KV cache transformers does not look for packed sequences
            model(
                **{k: v for k, v in collate([first, b]).items() if k in ("input_ids", "position_ids")}, use_cache=False
            ).logits
            for first in (a, changed_a)
        ]
    n = len(a["input_ids"])
    assert not torch.allclose(logits[0][0, :n], logits[1][0, :n])  # A's own logits did change
    torch.testing.assert_close(logits[0][0, n:], logits[1][0, n:], atol=TOLERANCE, rtol=0)


def test_gradient_accumulation_normalises_over_the_whole_step(model):
    rows = _rows((4, 12, 6, 9))
    collate = PaddingFreeCollator()
    whole = _loss(model, collate(rows))
    micro = [collate(rows[:1]), collate(rows[1:])]
    # What the Trainer counts: targets after the causal shift, over every micro-batch of the step.
    num_items = sum(int((m["labels"][:, 1:] != IGNORE_INDEX).sum()) for m in micro)
    accumulated = sum(_loss(model, m, num_items) for m in micro)
    assert accumulated.item() == pytest.approx(whole.item(), abs=TOLERANCE)
    naive = sum(_loss(model, m) for m in micro) / len(micro)  # mean of means weighs short rows up
    assert abs(naive.item() - whole.item()) > 10 * TOLERANCE


def test_pack_rows_fills_bins_in_order_and_packed_loss_matches(model):
    rows = _rows((5, 11, 8, 3, 6))
    packs = list(pack_rows(rows, max_length=16))
    assert all(len(p["input_ids"]) <= 16 for p in packs)
    assert sum(len(p["input_ids"]) for p in packs) == sum(len(r["input_ids"]) for r in rows)
    assert [len(p["input_ids"]) for p in packs] == [16, 11, 6]  # 5+11, 8+3, 6: first fit, data order kept
    padded = PaddingCollator(pad_token_id=0)(rows)
    packed = PaddingFreeCollator()(packs)
    assert _loss(model, packed).item() == pytest.approx(_loss(model, padded).item(), abs=TOLERANCE)


def test_pack_rows_with_bounded_open_bins_closes_the_fullest_bin():
    rows = _rows((10, 8, 6))
    assert [len(p["input_ids"]) for p in pack_rows(rows, max_length=16)] == [16, 8]  # 10+6, 8
    # Streaming keeps one bin open: 8 does not fit beside 10, so 10 is closed before 6 arrives.
    assert [len(p["input_ids"]) for p in pack_rows(iter(rows), max_length=16, open_bins=1)] == [10, 14]


def test_pack_rows_rejects_a_row_longer_than_the_bin():
    with pytest.raises(OmniError, match="longer than the packing length 4"):
        list(pack_rows(_rows((5,)), max_length=4))


def test_per_sequence_attention_gives_transformers_gradients():
    masked, packed = _llama(), _llama(PACKED_SDPA)
    assert packed.config._attn_implementation == PACKED_SDPA
    batch = PaddingFreeCollator()(_rows((6, 13, 4, 9)))
    for model in (masked, packed):
        causal_lm_loss(model, dict(batch))[0].backward()
    assert packed_attention._last_lengths[1] == [6, 13, 4, 9]  # the per-sequence path ran, not the fallback
    for (name, a), b in zip(masked.named_parameters(), packed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=TOLERANCE, rtol=1e-4, msg=name)


def test_per_sequence_attention_is_used_only_where_it_is_exact(tmp_path):
    from transformers import Qwen2VLConfig

    padded = PaddingCollator(pad_token_id=0)(_rows())
    masked, packed = _llama(), _llama(PACKED_SDPA)
    assert _loss(packed, padded).item() == pytest.approx(_loss(masked, padded).item(), abs=TOLERANCE)  # falls back
    packed.save_pretrained(tmp_path)
    assert PACKED_SDPA not in (tmp_path / "config.json").read_text()  # a saved model loads without omni

    class WithTowers:  # models with vision or audio towers keep their attention
        config = Qwen2VLConfig()

    assert not use_packed_attention(WithTowers())
