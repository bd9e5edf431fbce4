"""`get_template`: an explicit name, else the model family's template, else `default`."""

from __future__ import annotations

import pytest
from omni.errors import MissingCapabilityError
from omni.plugins import load_plugins
from omni.registry import ModelSpec
from omni.template import TemplateOptions, get_template
from omni.template.default import DefaultTemplate
from omni.testing.tokenizers import build_tokenizer

FAMILY = ModelSpec(name="fam", description="d", impl="m:f", template="default")


def test_default_when_nothing_names_one():
    registry = load_plugins({"OMNI_PLUGINS": ""}).registry
    template = get_template(None, build_tokenizer("smollm2"), TemplateOptions(max_length=9), registry=registry)
    assert isinstance(template, DefaultTemplate) and template.options.max_length == 9
    assert isinstance(
        get_template(None, build_tokenizer("smollm2"), model_spec=FAMILY, registry=registry), DefaultTemplate
    )


def test_explicit_name_wins_and_missing_one_says_what_to_install():
    registry = load_plugins({"OMNI_PLUGINS": ""}).registry
    with pytest.raises(
        MissingCapabilityError, match="template 'llama3' is not installed: pip install omni-plugin-llama"
    ):
        get_template("llama3", build_tokenizer("llama"), model_spec=FAMILY, registry=registry)
