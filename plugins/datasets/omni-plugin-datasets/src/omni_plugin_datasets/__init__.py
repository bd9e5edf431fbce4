"""omni-plugin-datasets: the `identity` self-cognition set and hub datasets (``org/name[:subset]``).

Registering imports nothing heavy: loaders live in their modules and load on use.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import DatasetSpec, hookimpl, option

from omni_plugin_datasets.hub import HUB_ID_PATTERN

OMNI_PLUGIN_API = 1


@dataclass
class IdentityOptions:
    """Who the assistant of the `identity` dataset is (ms-swift's ``--model_name``/``--model_author``)."""

    model_name: list[str] = option(
        default_factory=list,
        help="the assistant's name in the identity dataset: one name, or a Chinese and an English one",
    )
    model_author: list[str] = option(
        default_factory=list,
        help="who made the assistant, for the identity dataset: one name, or a Chinese and an English one",
    )


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="identity",
            description="who the assistant is: about 120 Q/A rows (English and Chinese) naming --model-name and --model-author",
            impl="omni_plugin_datasets.identity:load_identity",
            aliases=("self-cognition",),
            options=IdentityOptions,
        )
    )
    register(
        DatasetSpec(
            name="hub",
            description="datasets on the Hugging Face hub: --dataset org/name[:subset] (train split)",
            impl="omni_plugin_datasets.hub:load_hub_dataset",
            pattern=HUB_ID_PATTERN,
        )
    )
