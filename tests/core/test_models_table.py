"""docs/models.md is what scripts/models_table.py writes from `omni list models --json` today."""

from __future__ import annotations

import json
import subprocess
import sys

from omni.cli.main import main

from tests.helpers import REPO


def test_models_table_is_current():
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "models_table.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr[-2000:]


def test_list_models_json_gives_each_familys_architectures_template_modalities_and_parts(capsys):
    assert main(["list", "models", "--json"]) == 0
    families = {family["name"]: family for family in json.loads(capsys.readouterr().out)}
    vision_language = families["image-text-to-text"]
    assert vision_language["template"] == "multimodal" and vision_language["modalities"] == ["text", "image"]
    assert "model.visual.merger" in vision_language["parts"]["aligner"]
    assert "Qwen3ForCausalLM" in families["qwen3"]["architectures"]
