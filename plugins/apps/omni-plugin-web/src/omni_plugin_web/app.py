"""The page's HTTP API (FastAPI) and its one static page.

    GET  /                              the page
    GET  /api/commands                  the commands a run can be composed for, with their descriptions
    GET  /api/choices                   installed names by kind (models, tuners, algorithms, rewards, datasets ...)
    POST /api/form                      {command, values}: the option groups of that command for these values
    POST /api/preview                   {command, values}: the YAML config and the equivalent command line
    GET  /api/runs                      every run's summary; GET /api/runs/NAME: one run in detail
    POST /api/runs                      {command, values, name?}: start a run
    POST /api/runs/NAME/stop            stop it; POST /api/runs/NAME/resume {checkpoint}: start it again from one
    POST /api/chat/load                 {model, adapter, run, infer_backend}: start serving a model to chat with
    GET  /api/chat/status               idle, loading, ready or failed
    POST /api/chat                      {messages, max_tokens, temperature}: the answer, streamed (OpenAI events)

A mistake in what a request asks for is a 400 with ``{"error": "one line"}``: the page shows it and goes on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from omni.api import OmniError, command_options, get_registry

from omni_plugin_web.chat import ChatServer
from omni_plugin_web.runs import COMMANDS, Runs, command_line, config_yaml, output_option

STATIC = Path(__file__).parent / "static"
CHOICE_KINDS = ("models", "templates", "tuners", "algorithms", "rewards", "quantizers", "engines", "datasets")


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def create_app(runs_dir: Path, *, public: bool = False) -> FastAPI:
    """The page's app, keeping its runs under `runs_dir` (the chat server's log goes there too).

    `public`: bound to an address other machines reach, so any Host name is accepted; otherwise only loopback names.
    """
    app = FastAPI(title="omni web", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def this_page_only(request: Request, call_next: Any) -> Any:
        # Any web page the user opens may send requests to 127.0.0.1. Without a body type that needs the CORS
        # preflight this app never grants, or from another origin, or under a foreign Host name (DNS rebinding),
        # a request that starts runs or servers is refused.
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if not public and host not in LOOPBACK_NAMES:
            return JSONResponse({"error": f"Host {host!r}: this page answers only at 127.0.0.1"}, status_code=403)
        if request.method != "GET":
            media_type = request.headers.get("content-type", "").split(";")[0].strip()
            if media_type != "application/json":
                return JSONResponse({"error": "only application/json requests change anything"}, status_code=415)
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return JSONResponse({"error": f"requests from {origin} are refused"}, status_code=403)
        return await call_next(request)

    runs = Runs(runs_dir)
    chat = ChatServer(runs_dir / ".chat" / "serve.log")
    app.state.runs, app.state.chat = runs, chat
    app.router.add_event_handler("shutdown", chat.close)

    @app.exception_handler(OmniError)
    async def user_mistake(request: Request, exc: OmniError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        path = STATIC / name
        if path.parent != STATIC or not path.is_file():
            raise OmniError(f"no such file: {name}")
        return FileResponse(path)

    @app.get("/api/commands")
    async def commands() -> list[dict[str, str]]:
        registry = get_registry()
        found = [registry.find("commands", name) for name in COMMANDS]
        return [{"name": reg.spec.name, "description": reg.spec.description} for reg in found if reg is not None]

    @app.get("/api/choices")
    async def choices() -> dict[str, list[dict[str, str]]]:
        registry = get_registry()
        return {
            kind: [{"name": reg.spec.name, "description": reg.spec.description} for reg in registry.all(kind)]
            for kind in CHOICE_KINDS
        }

    @app.post("/api/form")
    async def form(request: Request) -> dict[str, Any]:
        command, values = await _command_and_values(request)
        groups = command_options(command, values)
        return {"command": command, "output_option": output_option(command), "groups": _plain(groups)}

    @app.post("/api/preview")
    async def preview(request: Request) -> dict[str, str]:
        command, values = await _command_and_values(request)
        flags = {f.name: f.flag for group in command_options(command, values) for f in group.fields}
        unknown = sorted(set(values) - set(flags))
        if unknown:
            raise OmniError(f"unknown option {unknown[0]!r} for omni {command}")
        return {
            "yaml": config_yaml(values),
            "config_command": f"omni {command} --config run.yaml",
            "command": command_line(command, values, flags),
        }

    @app.get("/api/runs")
    async def list_runs() -> list[dict[str, Any]]:
        return [runs.summary(name) for name in runs.names()]

    @app.post("/api/runs")
    async def start_run(request: Request) -> dict[str, Any]:
        command, values = await _command_and_values(request)
        name = (await request.json()).get("name") or None
        flags = {f.name for group in command_options(command, values) for f in group.fields}
        unknown = sorted(set(values) - flags)
        if unknown:
            raise OmniError(f"unknown option {unknown[0]!r} for omni {command}")
        return runs.summary(runs.start(command, values, name))

    @app.get("/api/runs/{name}")
    async def run_detail(name: str) -> dict[str, Any]:
        return runs.detail(name)

    @app.post("/api/runs/{name}/stop")
    async def stop_run(name: str) -> dict[str, Any]:
        runs.stop(name)
        return runs.summary(name)

    @app.post("/api/runs/{name}/resume")
    async def resume_run(name: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        checkpoint = str(body.get("checkpoint") or "last")
        if checkpoint != "last":
            checkpoint = str(Path(runs.summary(name)["output"]) / Path(checkpoint).name)
        runs.resume(name, checkpoint)
        return runs.summary(name)

    @app.post("/api/chat/load")
    async def chat_load(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        model, adapter = body.get("model") or None, body.get("adapter") or None
        if body.get("run"):  # a run's output: its adapter (on the base model it recorded), or its whole model
            summary = runs.summary(str(body["run"]))
            if summary["status"] != "finished":
                raise OmniError(f"run {summary['name']!r} is {summary['status']}; chat with a finished run")
            if summary["adapter"]:
                adapter = summary["output"]
            else:
                model = summary["output"]
        if adapter and not Path(adapter).expanduser().is_dir():
            raise OmniError(f"adapter {adapter}: no such folder")
        if model and model.startswith(("/", ".", "~")) and not Path(model).expanduser().exists():
            raise OmniError(f"model {model}: no such folder")  # other names may be hub ids: omni serve resolves them
        chat.load(model, adapter, body.get("infer_backend") or None)
        return chat.status()

    @app.get("/api/chat/status")
    async def chat_status() -> dict[str, Any]:
        return chat.status()

    @app.post("/api/chat")
    async def chat_answer(request: Request) -> StreamingResponse:
        body = await _json_object(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OmniError("messages: a non-empty list of chat messages is needed")
        events = chat.stream(messages, body)
        first = await anext(events)  # a refusal (no model loaded) is a 400, not an empty stream

        async def relay():
            yield first
            async for chunk in events:
                yield chunk

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise OmniError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise OmniError("the request body must be a JSON object")
    return body


async def _command_and_values(request: Request) -> tuple[str, dict[str, Any]]:
    body = await _json_object(request)
    command, values = body.get("command"), body.get("values") or {}
    if command not in COMMANDS:
        raise OmniError(f"command: one of {', '.join(COMMANDS)}, not {command!r}")
    if not isinstance(values, dict):
        raise OmniError("values: a mapping of option names to values")
    return command, values


def _plain(groups: list[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(group) for group in groups]
