"""Plugins shipped inside omni-core. They register through the same hooks as installed plugins."""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "omni.builtin.commands",
    "omni.builtin.data",
    "omni.builtin.encoders",
    "omni.builtin.models",
    "omni.builtin.serving",
    "omni.builtin.training",
)
