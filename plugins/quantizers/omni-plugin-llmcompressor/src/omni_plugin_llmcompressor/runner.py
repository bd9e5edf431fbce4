"""llm-compressor's one-shot GPTQ or AWQ on a saved model, run by the Python of llm-compressor's own environment
(.venv-quant), not omni's: it imports only that environment's libraries.

    python runner.py JOB.json

JOB.json (written by `quantizer.py`): method ("gptq" or "awq"), bits, group_size, ignore (module names or
compressed-tensors "re:" patterns left unquantized), model (the folder to quantize), tokenizer (a folder or id to load a tokenizer from: llm-compressor wants one
even for encoded batches), calibration (a torch file of
one-row batches of model inputs, encoded by omni), output_dir, threads. On failure the last line printed starts with
"omni-llmcompressor-error: ".
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

ERROR_PREFIX = "omni-llmcompressor-error: "
# compressed-tensors' preset schemes: int weights in groups, float activations.
SCHEMES = {("gptq", 4): "W4A16", ("gptq", 8): "W8A16", ("awq", 4): "W4A16_ASYM"}


def quantize(job: dict) -> None:
    """Load `job["model"]`, run `oneshot` with the job's recipe on its calibration batches, save it compressed."""
    import torch
    import transformers
    from compressed_tensors.quantization import preset_name_to_scheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from torch.utils.data import DataLoader

    torch.set_num_threads(job["threads"])
    config = transformers.AutoConfig.from_pretrained(job["model"])
    model = getattr(transformers, config.architectures[0]).from_pretrained(job["model"], dtype="auto")
    scheme = preset_name_to_scheme(SCHEMES[job["method"], job["bits"]], ["Linear"])
    scheme.weights = scheme.weights.model_copy(update={"group_size": job["group_size"]})
    groups = {"group_0": scheme}
    if job["method"] == "gptq":
        recipe = [GPTQModifier(config_groups=groups, ignore=job["ignore"])]
    else:
        recipe = [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=job["ignore"])]
    if not torch.accelerator.is_available():
        # llm-compressor 0.14's AWQ pins cached activations for faster copies to an accelerator; pinning fails
        # without one ("Cannot access accelerator device when none is available"), and on CPU there is no copy.
        IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    batches = torch.load(job["calibration"])
    # A tokenizer, not the model's whole processor: Qwen3-Omni's needs torchvision for video, absent here.
    tokenizer = transformers.AutoTokenizer.from_pretrained(job["tokenizer"])
    oneshot(model=model, processor=tokenizer, recipe=recipe, dataset=DataLoader(batches, batch_size=None))
    model.save_pretrained(job["output_dir"], save_compressed=True)


def main() -> int:
    try:
        quantize(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    except Exception as exc:  # reported to omni as one line, after the traceback for the log
        traceback.print_exc()
        message = str(exc).strip().splitlines()
        print(f"{ERROR_PREFIX}{type(exc).__name__}: {message[0] if message else ''}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
