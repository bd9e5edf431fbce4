"""Training throughput of image rows on a tiny vision-language model: padded batches against padding-free ones.

    .venv/bin/python benchmarks/vl_throughput.py                       # tiny LLaVA and Gemma 3, 64 rows, batch 8
    .venv/bin/python benchmarks/vl_throughput.py --rows 128 --batch 16 --threads 2

Rows of the coloured-shapes set get one image and a question repeated 1 to 12 times, so lengths differ as in real
data. Each row is encoded by the `multimodal` template (the processor's own ids); batches are collated by omni's
`PaddingCollator` or `PaddingFreeCollator` and run forward and backward through the model (full fine-tuning, SGD
step). Printed per family and mode: real (non-pad) tokens per second over the median step, and the tokens each step
computes on (padded batches compute on their padding too). Qwen2-VL-style models (M-RoPE) get each concatenated row's
3-D positions from the model's own get_rope_index, as `omni sft --padding-free` does. Timings on a shared CPU vary
between runs by 10-20%.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path


def rows(shapes, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    source = [json.loads(line) for line in shapes.train.read_text().splitlines()]
    out = []
    for index in range(count):
        row = source[index % len(source)]
        question = " ".join(["What colour is the shape?"] * rng.randint(1, 12))
        messages = [
            {"role": "user", "content": f"<image>{question}"},
            {"role": "assistant", "content": row["solution"]},
        ]
        out.append({"messages": messages, "images": [str(shapes.directory / row["images"][0])]})
    return out


def measure(model, features: list[dict], collator, batch: int, repeats: int) -> tuple[float, int]:
    """(real tokens per second over the median step, tokens computed per step on average)."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    batches = [collator(features[i : i + batch]) for i in range(0, len(features), batch)]
    inputs = [{k: v for k, v in b.items() if k not in ("loss_positions", "num_tokens")} for b in batches]
    real = sum(len(f["input_ids"]) for f in features)
    computed = sum(b["input_ids"].numel() for b in inputs) / len(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in inputs:
            model(**b, use_cache=False).loss.backward()  # as the trainer calls it (packed rows need no cache)
            optimizer.step()
            optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return real / statistics.median(times), int(computed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from omni.models.multimodal import load_image_text_to_text
    from omni.models.options import LoadOptions, ModelOptions
    from omni.template import get_template
    from omni.testing.synthetic import write_shapes
    from omni.testing.vision_language import build_tiny_llava, build_tiny_qwen2_vl
    from omni.train.collators import PaddingCollator, PaddingFreeCollator, multimodal_rope_index
    from omni_plugin_families.testing import build_tiny_gemma3

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vl-throughput-"))
    shapes = write_shapes(work / "shapes", train=32, held_out=1)
    builders = {"llava": build_tiny_llava, "gemma3": build_tiny_gemma3, "qwen2.5-vl": build_tiny_qwen2_vl}
    print(f"{'family':<12} {'mode':<13} {'real tok/s':>10} {'tokens/step':>12}")
    for family, build in builders.items():
        path = build(work / family)
        model, processor = load_image_text_to_text(str(path), model_options=ModelOptions(), load_options=LoadOptions())
        model.train()
        template = get_template("multimodal", processor)
        features = [
            {"input_ids": e.input_ids, "labels": e.labels, **e.extras}
            for e in map(template.encode, rows(shapes, args.rows, seed=0))
        ]
        collators = {
            "padded": PaddingCollator(pad_token_id=processor.tokenizer.pad_token_id),
            "padding-free": PaddingFreeCollator(rope_index=multimodal_rope_index(model)),
        }
        for mode, collator in collators.items():
            speed, computed = measure(model, features, collator, args.batch, args.repeats)
            print(f"{family:<12} {mode:<13} {speed:>10.0f} {computed:>12}")


if __name__ == "__main__":
    main()
