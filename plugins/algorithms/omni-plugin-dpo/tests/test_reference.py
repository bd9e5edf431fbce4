"""With LoRA, the DPO reference is the base model with a fresh adapter disabled, or TRL's copy of a non-zero one."""

from __future__ import annotations

import pytest
from omni_plugin_dpo.reference import REF_ADAPTER, drop_reference_copy_if_exact


def _trl_policy(tiny_model, tmp_path, init_lora_weights):
    """The policy after TRL's DPOTrainer took it: a PEFT model given without `peft_config` gets a `ref` copy."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=init_lora_weights)
    pairs = Dataset.from_list([{"prompt": "Say A or B.", "chosen": " A", "rejected": " B"}] * 2)
    trainer = DPOTrainer(
        model=get_peft_model(base, config),
        args=DPOConfig(output_dir=str(tmp_path), report_to=[], max_steps=1, bf16=False),
        train_dataset=pairs,
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    assert REF_ADAPTER in trainer.model.peft_config
    return trainer.model


def test_a_fresh_adapter_needs_no_reference_copy(tiny_model, tmp_path):
    import torch

    model = _trl_policy(tiny_model, tmp_path, init_lora_weights=True)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert drop_reference_copy_if_exact(model)
    assert REF_ADAPTER not in model.peft_config
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == trainable
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        policy = model(input_ids=ids).logits
        with model.disable_adapter():
            reference = model(input_ids=ids).logits
    assert torch.equal(policy, reference)  # untrained, the adapter changes nothing


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_an_adapter_that_rewrites_the_base_keeps_its_copy(tiny_model, tmp_path, init):
    model = _trl_policy(tiny_model, tmp_path, init_lora_weights=init)
    assert not drop_reference_copy_if_exact(model)
    assert REF_ADAPTER in model.peft_config
