"""What the GaLore tests share: a tiny Llama, the colour task, token rows, and `omni` run in this process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import write_color_task

# GaLore's optimizer variants as `omni sft` flags (plain 32-bit AdamW needs none).
VARIANTS = {
    "adamw": [],
    "8bit": ["--galore-optim", "adamw_8bit"],
    "qgalore": ["--galore-quantization", "true"],
}
FAST = "--gradient-checkpointing false --logging-steps 1 --torch-dtype float32".split()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from omni.testing.models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_task(tmp_path_factory.mktemp("data") / "colors.jsonl")


def token_rows(n=32):
    """Rows of 16 random token ids, trained on every token."""
    generator = torch.Generator().manual_seed(0)
    return [{"input_ids": (ids := torch.randint(3, 200, (16,), generator=generator)), "labels": ids} for _ in range(n)]


@pytest.fixture
def omni_in_process(capsys):
    """Run `omni` with only the GaLore plugin installed; returns (exit code, stderr)."""
    from omni.cli.main import main
    from omni.plugins import load_plugins, using_host

    def run(argv):
        with using_host(load_plugins({"OMNI_PLUGINS": "galore"})):
            code = main(list(argv))
        return code, capsys.readouterr().err

    return run
