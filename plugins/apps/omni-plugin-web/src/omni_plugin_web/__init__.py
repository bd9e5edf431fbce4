"""omni-plugin-web: `omni web`, a page to compose runs from the commands' own options, watch and compare them,
and chat with what they trained.

Light: FastAPI, uvicorn and httpx are imported only when `omni web` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import CommandSpec, hookimpl, option

OMNI_PLUGIN_API = "1.3"  # command_options


@dataclass
class WebOptions:
    host: str = option(
        "127.0.0.1", help="address to listen on; 0.0.0.0 makes the page (and the runs it starts) reachable by others"
    )
    port: int = option(7860, help="port to listen on; 0 picks a free one (the address is printed at start)")
    runs_dir: str = option("web_runs", help="folder holding the runs the page starts: one folder per run")
    share: bool = option(False, help="a public share link (Gradio's --share): not supported, omni works offline")


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="web",
            description="a web page to compose and start runs, watch and compare them, and chat with their models",
            impl="omni_plugin_web.command:run",
            options=WebOptions,
        )
    )
