"""QLoRA for real on this CPU: a 4-bit NF4 base from the bnb quantizer, LoRA on top, optimizer steps."""

from __future__ import annotations

import pytest
import torch
from omni.api import OmniError
from omni_plugin_bnb.options import BnbOptions
from omni_plugin_bnb.quantizer import BnbQuantizer


def test_four_bit_config_is_nf4_double_quant_with_the_compute_dtype():
    config = BnbQuantizer().quantization_config(4, torch_dtype="bfloat16")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    fp4 = BnbQuantizer(BnbOptions(bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False))
    config = fp4.quantization_config(4, torch_dtype="auto")
    assert config.bnb_4bit_quant_type == "fp4" and not config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float32
    assert BnbQuantizer().quantization_config(8, torch_dtype="auto").load_in_8bit


def test_unsupported_bits_are_a_clear_error():
    with pytest.raises(OmniError, match="--quant-bits 4 or 8, not 3"):
        BnbQuantizer().quantization_config(3, torch_dtype="float32")


def test_qlora_step_trains_the_adapter_on_a_4bit_base(tmp_path):
    import bitsandbytes as bnb
    from omni.testing.models import build_tiny_model
    from omni_plugin_lora.options import LoraOptions
    from omni_plugin_lora.tuner import LoraTuner
    from transformers import AutoModelForCausalLM

    path = build_tiny_model("llama", tmp_path / "m")
    quantizer = BnbQuantizer()
    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=quantizer.quantization_config(4, torch_dtype="float32"), dtype=torch.float32
    )
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    model = quantizer.prepare_for_training(model, gradient_checkpointing=True)
    model = LoraTuner(LoraOptions(lora_rank=4, lora_dropout=0.0)).prepare(model)
    model.train()
    ids = torch.randint(3, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # the same batch five times: the adapter fits it


def test_quant_bits_alone_means_bnb_qlora_from_the_cli(tmp_path):
    import json

    from omni.cli.main import main
    from omni.plugins import load_plugins, using_host
    from omni.testing.models import build_tiny_model

    model = build_tiny_model("llama", tmp_path / "m")
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}
    data = tmp_path / "d.jsonl"
    data.write_text((json.dumps(row) + "\n") * 4)
    out = tmp_path / "out"
    argv = ["sft", "--model", str(model), "--dataset", str(data), "--quant-bits", "4", "--max-steps", "2"]
    argv += ["--output-dir", str(out), "--learning-rate", "1e-2"]
    with using_host(load_plugins({"OMNI_PLUGINS": "lora,bnb"})):
        assert main(argv) == 0
    assert (out / "adapter_model.safetensors").is_file()
    args = json.loads((out / "args.json").read_text())
    assert (args["quant_bits"], args["quant_method"]) == (4, "bnb")
