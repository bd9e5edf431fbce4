"""What `omni serve` reads on a client's word: data sent inline always; local files only under
``--allowed-local-media-path``, regular ones, of bounded size; URLs only on ``--allowed-media-domains``
hosts, redirects included. Refusals name the flag and never tell whether a file exists or a port is open.

A tiny random Qwen3-Omni (it takes images) behind real HTTP on 127.0.0.1; URLs point at a real local HTTP
server.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from omni.encoders.sources import MediaPolicy
from omni.infer.pt_engine import PtEngine
from omni.serve.app import ServedModels, create_app
from omni.serve.background import serving
from PIL import Image

from tests.reliability.conftest import AUTH, KEY

MODEL = "tiny-omni"
MAX_BYTES = 4096


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def omni_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PtEngine]:
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    engine = PtEngine(str(build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The allowed folder: an image, a FIFO, a file over the size limit, a link to a file outside."""
    folder = tmp_path_factory.mktemp("allowed-media")
    (folder / "red.png").write_bytes(png())
    os.mkfifo(folder / "pipe.png")
    (folder / "big.png").write_bytes(png() + b"\0" * MAX_BYTES)
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(png())
    (folder / "link.png").symlink_to(outside)
    return folder


class _MediaHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("?to=", 1)[1])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def media_site(media_dir: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the allowed folder's files, and redirects (/redirect?to=URL)."""
    handler = functools.partial(_MediaHandler, directory=str(media_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@contextlib.contextmanager
def served(engine: PtEngine, policy: MediaPolicy) -> Iterator[str]:
    app = create_app(engine, ServedModels(MODEL), api_key=KEY, default_max_tokens=2, media=policy)
    with serving(app) as url:
        yield url


def ask_about(url: str, image: str) -> httpx.Response:
    part = {"type": "image_url", "image_url": {"url": image}}
    body = {"model": MODEL, "messages": [{"role": "user", "content": [part, {"type": "text", "text": "Color?"}]}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120)


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    return error["message"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_by_default_only_inline_data_is_read(omni_engine: PtEngine, media_dir: Path, media_site: str) -> None:
    with served(omni_engine, MediaPolicy()) as url:
        inline = "data:image/png;base64," + base64.b64encode(png()).decode()
        assert ask_about(url, inline).status_code == 200
        exists, missing = str(media_dir / "red.png"), str(media_dir / "missing.png")
        said = {refusal(ask_about(url, item)).replace(item, "ITEM") for item in (exists, missing)}
        said.add(refusal(ask_about(url, f"file://{exists}")).replace(exists, "ITEM"))
        assert said == {"image ITEM: local files are not readable here except under --allowed-local-media-path DIR"}
        listening, closed = f"{media_site}/red.png", f"http://127.0.0.1:{closed_port()}/red.png"
        said = {refusal(ask_about(url, item)).replace(item, "ITEM") for item in (listening, closed)}
        assert said == {"image ITEM: URLs are not fetched here except from hosts named by --allowed-media-domains"}


def test_local_files_only_regular_ones_of_bounded_size_under_the_allowed_folder(
    omni_engine: PtEngine, media_dir: Path
) -> None:
    with served(omni_engine, MediaPolicy(local_root=media_dir, max_bytes=MAX_BYTES)) as url:
        assert ask_about(url, "red.png").status_code == 200
        assert ask_about(url, f"file://{media_dir / 'red.png'}").status_code == 200
        assert "is not a regular file" in refusal(ask_about(url, "pipe.png"))  # answered, not hung on the FIFO
        assert f"larger than this server's limit of {MAX_BYTES} bytes" in refusal(ask_about(url, "big.png"))
        oversized = "data:image/png;base64," + base64.b64encode(b"\0" * 2 * MAX_BYTES).decode()
        assert "larger than this server's limit" in refusal(ask_about(url, oversized))
        for outside in ("link.png", "../outside0/secret.png", "/etc/hostname"):
            assert "except under --allowed-local-media-path" in refusal(ask_about(url, outside))


def test_urls_only_on_allowed_hosts_redirects_included_with_one_neutral_failure(
    omni_engine: PtEngine, media_site: str
) -> None:
    port = media_site.rsplit(":", 1)[1]
    with served(omni_engine, MediaPolicy(domains=frozenset({"127.0.0.1"}), timeout_s=30)) as url:
        assert ask_about(url, f"{media_site}/red.png").status_code == 200
        elsewhere = f"http://localhost:{port}/red.png"
        assert "--allowed-media-domains" in refusal(ask_about(url, elsewhere))
        assert "--allowed-media-domains" in refusal(ask_about(url, f"{media_site}/redirect?to={elsewhere}"))
        missing, closed = f"{media_site}/missing.png", f"http://127.0.0.1:{closed_port()}/red.png"
        said = {refusal(ask_about(url, item)).replace(item, "ITEM") for item in (missing, closed)}
        assert said == {"image ITEM: could not be fetched"}
