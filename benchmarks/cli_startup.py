"""Wall time of omni's listing commands, next to a bare Python start, with every repo plugin installed; then
`omni --help` with 0 and with 20 more installed plugins (tests/core/tiny_plugins.py: a tuner, a reward and a
command each, with options), side by side.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]

Target: `omni --help` under 0.3 s on a 2-core machine with 20 plugins. Figures are medians over the runs, with
Python's bytecode cache on (as after `pip install`; its files go to a temporary folder, not into the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.core.tiny_plugins import write_tiny_plugins  # noqa: E402

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


def median_wall_time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)  # warm caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_cpu_time(argv: list[str], runs: int, env: dict[str, str]) -> float:
    """Median user + system CPU seconds of one run: steadier than wall time on a machine other work shares."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def plugin_count_table(runs: int, base_env: dict[str, str]) -> None:
    """`omni --help` with the built-ins only, with 20 extra plugins, and with every installed plugin plus them."""
    with tempfile.TemporaryDirectory() as site:
        names = write_tiny_plugins(Path(site), 20)
        env = {**base_env, "PYTHONPATH": site}
        rows = [
            ("0 plugins (built-ins only)", {**env, "OMNI_PLUGINS": ""}),
            ("20 plugins", {**env, "OMNI_PLUGINS": ",".join(names)}),
            ("repo plugins + 20", {k: v for k, v in env.items() if k != "OMNI_PLUGINS"}),
        ]
        print(f"\n{'omni --help with':<28} {'median s':>9} {'cpu s':>7}")
        for label, row_env in rows:
            wall = median_wall_time([OMNI, "--help"], runs, row_env)
            print(f"{label:<28} {wall:>9.3f} {median_cpu_time([OMNI, '--help'], runs, row_env):>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("OMNI_")}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "omni-benchmark-pycache")

    listing = subprocess.run([OMNI, "plugins", "--json"], capture_output=True, text=True, check=True, env=env)
    installed = sorted({p["distribution"] for p in json.loads(listing.stdout) if not p["builtin"]})
    print(f"installed plugin distributions ({len(installed)}): {', '.join(installed) or 'none'}")
    baseline = None
    print(f"{'command':<28} {'median s':>9} {'vs python':>10}")
    for label, argv in COMMANDS:
        seconds = median_wall_time(argv, args.runs, env)
        baseline = baseline or seconds
        print(f"{label:<28} {seconds:>9.3f} {seconds / baseline:>9.1f}x")
        if label == "omni --help":
            verdict = "meets" if seconds < TARGET_HELP_S else "MISSES"
            help_line = f"omni --help: {seconds:.3f} s {verdict} the {TARGET_HELP_S} s target"
    print(help_line)
    plugin_count_table(args.runs, env)


if __name__ == "__main__":
    main()
