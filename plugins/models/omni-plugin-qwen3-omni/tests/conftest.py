"""Shared fixtures: the tiny Qwen3-Omni checkpoints (built once per session) and small synthetic sets."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def omni_dir(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


@pytest.fixture(scope="session")
def talker_dir(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni-talker"), with_talker=True)


@pytest.fixture(scope="session")
def processor(omni_dir):
    from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor

    return Qwen3OmniProcessor.from_pretrained(omni_dir)


@pytest.fixture(scope="session")
def template(processor):
    from omni.template import get_template

    return get_template("qwen3-omni", processor)
