"""Wall time of omni's listing commands, next to a bare Python start, with every repo plugin installed.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]

Target: `omni --help` under 0.3 s on a 2-core machine. Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

OMNI = str(Path(sys.executable).with_name("omni"))
COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
    ("omni --help", [OMNI, "--help"]),
    ("omni plugins", [OMNI, "plugins"]),
    ("omni list tuners", [OMNI, "list", "tuners"]),
    ("omni list models", [OMNI, "list", "models"]),
    ("omni sft --help", [OMNI, "sft", "--help"]),
]
TARGET_HELP_S = 0.3


def median_wall_time(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    listing = subprocess.run([OMNI, "plugins", "--json"], capture_output=True, text=True, check=True)
    installed = sorted({p["distribution"] for p in json.loads(listing.stdout) if not p["builtin"]})
    print(f"installed plugin distributions ({len(installed)}): {', '.join(installed) or 'none'}")
    baseline = None
    print(f"{'command':<28} {'median s':>9} {'vs python':>10}")
    for label, argv in COMMANDS:
        seconds = median_wall_time(argv, args.runs)
        baseline = baseline or seconds
        print(f"{label:<28} {seconds:>9.3f} {seconds / baseline:>9.1f}x")
        if label == "omni --help":
            verdict = "meets" if seconds < TARGET_HELP_S else "MISSES"
            help_line = f"omni --help: {seconds:.3f} s {verdict} the {TARGET_HELP_S} s target"
    print(help_line)


if __name__ == "__main__":
    main()
