"""Read one media item of a dataset row into bytes, whatever form the row gives it in.

A media item (an entry of a row's ``images``/``audios``/``videos`` list, or an OpenAI content part) is one
of: a local path (relative paths resolve against the dataset file's directory), a ``file://`` URL, an
``http(s)://`` URL, a ``data:`` URI, a bare base64 string, raw bytes, or a dict — an OpenAI content part
(``{"type": "image_url", "image_url": {"url": ...}}``, ``{"type": "input_audio", "input_audio":
{"data": ..., "format": "wav"}}``) or a datasets-style ``{"bytes": ..., "path": ...}`` record.
Anything that cannot be read raises `omni.errors.DataError` naming the dataset row and the item.

Only regular files are read (a FIFO or a device would block or never end). A `MediaPolicy` — what
`omni serve` passes for a client's request — limits what may be read at all: inline data always; local
files only under one folder; URLs only on named hosts; each item's size and download time bounded. Its
refusals say which flag allows the item and never whether a file exists or a host answers.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.errors import DataError

MediaItem = str | bytes | bytearray | memoryview | os.PathLike | Mapping[str, Any]

URL_TIMEOUT_S = 20.0
# A string this long made only of base64 characters is taken as inline data rather than a (missing) path.
_BASE64_MIN_CHARS = 64
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
# Content-part types; each keeps its payload under the key of its own name.
_PART_TYPES = ("image_url", "image", "input_audio", "audio_url", "audio", "video_url", "video")
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class MediaPolicy:
    """What a media item may name when it comes from someone other than the user running omni.

    `local_root`: local paths (and ``file://`` URLs) only inside this folder, relative ones resolved
    against it; None refuses every local path. `domains`: hosts ``http(s)://`` URLs may name (``*``:
    any); empty refuses every URL. `max_bytes` bounds each item, inline data included; `timeout_s`
    bounds each download as a whole.
    """

    local_root: Path | None = None
    domains: frozenset[str] = frozenset()
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 10.0

    def allows_host(self, host: str | None) -> bool:
        """Whether URLs on `host` may be fetched."""
        return "*" in self.domains or (host or "").lower() in self.domains


@dataclass(frozen=True)
class MediaContext:
    """Where a media item was referenced from: the dataset file and row (for errors) and the folder
    relative paths resolve against (by default the dataset file's own folder)."""

    source: str = "<input>"
    location: int | str | None = None
    base_dir: Path | None = None

    @classmethod
    def of_row(cls, row: Any, base_dir: str | Path | None = None) -> MediaContext:
        """The context of a dataset row: an `omni.data.Row` carries its file and line; plain dicts do not."""
        source = str(getattr(row, "source", "<input>"))
        location = getattr(row, "location", None)
        if base_dir is None and Path(source).is_file():
            base_dir = Path(source).parent
        return cls(source, location, Path(base_dir) if base_dir is not None else None)

    def error(self, modality: str, name: str, problem: str) -> DataError:
        """A `DataError` naming this row and the media item."""
        return DataError(self.source, self.location, f"{modality} {name}: {problem}")


@dataclass(frozen=True)
class Blob:
    """The bytes of one media item and a short name for it in messages (decoders sniff the format)."""

    data: bytes
    name: str


def read_source(
    item: MediaItem, modality: str, context: MediaContext | None = None, policy: MediaPolicy | None = None
) -> Blob:
    """The bytes of `item`; raises `DataError` naming the row and the item when it cannot be read.

    `modality` ("image", "audio", "video") only words the error messages. With a `policy`, an item it
    does not allow is refused before anything is opened or fetched; without one (the user's own data),
    any local file or URL is read.
    """
    context = context or MediaContext()
    blob = _read_source(item, modality, context, policy)
    if policy is not None and len(blob.data) > policy.max_bytes:
        raise context.error(modality, blob.name, f"is larger than this server's limit of {policy.max_bytes} bytes")
    return blob


def _read_source(item: MediaItem, modality: str, context: MediaContext, policy: MediaPolicy | None) -> Blob:
    if isinstance(item, bytes | bytearray | memoryview):
        return Blob(bytes(item), f"<{len(item)} bytes>")
    if isinstance(item, Mapping):
        return _read_mapping(item, modality, context, policy)
    if isinstance(item, os.PathLike):
        return _read_path(os.fspath(item), modality, context, policy)
    if not isinstance(item, str):
        raise context.error(
            modality,
            repr(item)[:80],
            f"cannot read a {type(item).__name__}; give a path, URL, data: URI, base64 or bytes",
        )
    text = item.strip()
    if text.startswith("data:"):
        return _read_data_uri(text, modality, context, policy)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return _read_url(text, modality, context, policy)
    if scheme == "file":
        return _read_path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path), modality, context, policy)
    if len(text) >= _BASE64_MIN_CHARS and _BASE64.match(text):
        # Only files a policy allows are looked for: anything else would tell a client whether a file exists.
        resolved = _resolve(text, context, policy)
        if not ((policy is None or _allowed_file(resolved, policy) is not None) and _is_file(resolved)):
            return Blob(_b64decode(text, modality, "<base64>", context, policy), "<base64>")
    return _read_path(text, modality, context, policy)


def _read_mapping(item: Mapping[str, Any], modality: str, context: MediaContext, policy: MediaPolicy | None) -> Blob:
    kind = item.get("type") or next((k for k in _PART_TYPES if k in item), None)
    if kind == "input_audio":
        payload = item.get("input_audio")
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise context.error(modality, "input_audio part", "needs input_audio.data (base64) and input_audio.format")
        return Blob(_b64decode(str(payload["data"]), modality, "input_audio part", context, policy), "<input_audio>")
    if kind in _PART_TYPES and item.get(kind) is not None:
        payload = item[kind]
        if isinstance(payload, Mapping):
            payload = payload.get("url", payload.get("path"))
        if payload is None:
            raise context.error(modality, f"{kind} part", "names no url or path")
        return _read_source(payload, modality, context, policy)
    if item.get("bytes") is not None:  # the `datasets` Image/Audio feature's storage
        return Blob(bytes(item["bytes"]), str(item.get("path") or f"<{len(item['bytes'])} bytes>"))
    if item.get("path") is not None:
        return _read_source(str(item["path"]), modality, context, policy)
    raise context.error(
        modality,
        repr(dict(item))[:80],
        "is not a content part this version understands (image_url, input_audio, video_url, bytes/path)",
    )


def _resolve(path: str, context: MediaContext, policy: MediaPolicy | None) -> Path:
    if policy is not None:  # a client's path: no ~user expansion, relative to the allowed folder
        return Path(policy.local_root or ".", path)
    p = Path(path).expanduser()
    return p if p.is_absolute() or context.base_dir is None else context.base_dir / p


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows: certainly not a file
        return False


def _allowed_file(path: Path, policy: MediaPolicy) -> Path | None:
    """`path` with its links resolved when it lies inside the policy's folder, else None."""
    if policy.local_root is None:
        return None
    real = os.path.realpath(path)
    return Path(real) if real.startswith(os.path.join(os.path.realpath(policy.local_root), "")) else None


def _read_path(path: str, modality: str, context: MediaContext, policy: MediaPolicy | None) -> Blob:
    resolved = _resolve(path, context, policy)
    if policy is not None:
        allowed = _allowed_file(resolved, policy)
        if allowed is None:  # the same words whether or not the file exists
            raise context.error(
                modality, path, "local files are not readable here except under --allowed-local-media-path DIR"
            )
        resolved = allowed
    # A client is not told where the server's folder is.
    shown = path if policy is not None or str(resolved) == path else f"{path} (resolved to {resolved})"
    limit = None if policy is None else policy.max_bytes
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read. A client's path
        # was resolved above: a link put in its place since then is not followed.
        no_links = getattr(os, "O_NOFOLLOW", 0) if policy is not None else 0
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | no_links)
    except FileNotFoundError:
        raise context.error(modality, shown, "file does not exist") from None
    except OSError as exc:
        raise context.error(modality, shown, f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise context.error(modality, shown, "is not a regular file")
        data = handle.read() if limit is None else handle.read(limit + 1)
    return Blob(data, path)


def _read_data_uri(uri: str, modality: str, context: MediaContext, policy: MediaPolicy | None) -> Blob:
    header, sep, payload = uri[len("data:") :].partition(",")
    if not sep:
        raise context.error(modality, "data: URI", "has no ',' between its header and its data")
    mime, *params = header.split(";")
    name = f"<data:{mime or 'unknown'}>"
    if "base64" in params:
        return Blob(_b64decode(payload, modality, "data: URI", context, policy), name)
    return Blob(urllib.parse.unquote_to_bytes(payload), name)


def _b64decode(text: str, modality: str, name: str, context: MediaContext, policy: MediaPolicy | None) -> bytes:
    if policy is not None and len(text) // 4 * 3 > policy.max_bytes + 3:  # refused before decoding
        raise context.error(modality, name, f"is larger than this server's limit of {policy.max_bytes} bytes")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise context.error(modality, name, f"is not valid base64 ({exc})") from None


def _read_url(url: str, modality: str, context: MediaContext, policy: MediaPolicy | None) -> Blob:
    if policy is None:
        request = urllib.request.Request(url, headers={"User-Agent": "omni"})
        try:
            with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
                return Blob(response.read(), url)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise context.error(modality, url, f"cannot be downloaded ({reason})") from None
    refused = "URLs are not fetched here except from hosts named by --allowed-media-domains"
    if not policy.allows_host(urllib.parse.urlsplit(url).hostname):
        raise context.error(modality, url, refused)
    opener = urllib.request.build_opener(_PolicyRedirects(policy))
    deadline = time.monotonic() + policy.timeout_s
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "omni"}), timeout=policy.timeout_s) as got:
            data = bytearray()
            while chunk := got.read(_READ_CHUNK):
                data += chunk
                if len(data) > policy.max_bytes or time.monotonic() > deadline:
                    break
    except _RedirectRefused:
        raise context.error(modality, url, refused) from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError):
        # One message for every failure: which one it was would tell a client what the network holds.
        raise context.error(modality, url, "could not be fetched") from None
    if time.monotonic() > deadline:
        raise context.error(modality, url, f"took longer than this server's limit of {policy.timeout_s:g} s")
    return Blob(bytes(data), url)


class _RedirectRefused(Exception):
    """A redirect led to a host the policy does not allow."""


class _PolicyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to hosts the policy allows (an allowed host must not lead elsewhere)."""

    def __init__(self, policy: MediaPolicy) -> None:
        self.policy = policy

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not self.policy.allows_host(urllib.parse.urlsplit(newurl).hostname):
            raise _RedirectRefused(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
