"""Choose and build the template for a model: the explicit name, the model family's, else `default`."""

from __future__ import annotations

from typing import Any

from omni.registry import ModelSpec, Registry
from omni.template.base import Template, TemplateOptions


def template_name(name: str | None, model_spec: ModelSpec | None = None) -> str:
    """The template to use: `name` when given, else the model family's default, else ``default``."""
    return name or (model_spec.template if model_spec is not None else None) or "default"


def get_template(
    name: str | None,
    processor: Any,
    options: TemplateOptions | None = None,
    *,
    model_spec: ModelSpec | None = None,
    registry: Registry | None = None,
) -> Template:
    """A ready `Template` for `processor` (tokenizer or multimodal processor).

    Raises `MissingCapabilityError` naming the distribution to install when the template is not
    registered. `registry` defaults to the process-wide one.
    """
    if registry is None:
        from omni.plugins import get_registry

        registry = get_registry()
    spec = registry.get("templates", template_name(name, model_spec)).spec
    return spec.load()(processor, options or TemplateOptions())
