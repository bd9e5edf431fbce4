"""Peak memory and time of the loss's forward and backward: the plain cross-entropy (whole logits) against
omni's chunked one (--loss-chunk-tokens), on a Qwen3-0.6B-shaped output projection.

    .venv/bin/python benchmarks/chunked_loss_memory.py                   # 2048 target tokens, chunks of 1024
    .venv/bin/python benchmarks/chunked_loss_memory.py --tokens 4096 --chunk 512

Each mode runs in a fresh process: hidden states (tokens x 1024) and a 151,936 x 1024 lm_head are made, then the
peak resident memory grows by what the loss and its backward hold at once (fp32 on the CPU; on a GPU, the
allocator's peak). The whole logits alone are tokens x vocabulary x 4 bytes; the figure printed beside is that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

HIDDEN, VOCAB = 1024, 151936

MEASURE = """
import json, resource, sys, time, torch
import torch.nn.functional as F
from omni.train.chunked_loss import chunked_cross_entropy
tokens, chunk = int(sys.argv[1]), int(sys.argv[2])
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
head = torch.nn.Linear(HIDDEN, VOCAB, bias=False, device=device)
hidden = torch.randn(tokens, HIDDEN, device=device, requires_grad=True)
targets = torch.randint(0, VOCAB, (tokens,), device=device)
def peak():
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
F.cross_entropy(head(hidden[:8]), targets[:8]).backward()  # allocator and kernels warm, weight gradient held
head.zero_grad(set_to_none=False)
hidden.grad = None
before = peak()
start = time.perf_counter()
if chunk:
    loss = chunked_cross_entropy(head, hidden, targets, chunk)
else:
    loss = F.cross_entropy(head(hidden).float(), targets, reduction="sum")
loss.backward()
print(json.dumps({"seconds": time.perf_counter() - start, "added_bytes": peak() - before, "loss": loss.item()}))
""".replace("HIDDEN", str(HIDDEN)).replace("VOCAB", str(VOCAB))


def measure(tokens: int, chunk: int) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tokens), str(chunk)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048, help="target tokens in the batch")
    parser.add_argument("--chunk", type=int, default=1024, help="--loss-chunk-tokens")
    args = parser.parse_args()
    logits_gib = args.tokens * VOCAB * 4 / 2**30
    print(f"{args.tokens} target tokens x {VOCAB} vocabulary: whole fp32 logits {logits_gib:.2f} GiB")
    plain, chunked = measure(args.tokens, 0), measure(args.tokens, args.chunk)
    print(f"{'loss':<22} {'peak added GiB':>14} {'seconds':>8} {'loss value':>12}")
    for label, r in (("plain", plain), (f"chunked ({args.chunk} tokens)", chunked)):
        print(f"{label:<22} {r['added_bytes'] / 2**30:>14.2f} {r['seconds']:>8.2f} {r['loss']:>12.2f}")
    print(f"avoided: {(plain['added_bytes'] - chunked['added_bytes']) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
