"""Read one media item of a dataset row into bytes, whatever form the row gives it in.

A media item (an entry of a row's ``images``/``audios``/``videos`` list, or an OpenAI content part) is one
of: a local path (relative paths resolve against the dataset file's directory), a ``file://`` URL, an
``http(s)://`` URL, a ``data:`` URI, a bare base64 string, raw bytes, or a dict — an OpenAI content part
(``{"type": "image_url", "image_url": {"url": ...}}``, ``{"type": "input_audio", "input_audio":
{"data": ..., "format": "wav"}}``) or a datasets-style ``{"bytes": ..., "path": ...}`` record.
Anything that cannot be read raises `omni.errors.DataError` naming the dataset row and the item.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
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


def read_source(item: MediaItem, modality: str, context: MediaContext | None = None) -> Blob:
    """The bytes of `item`; raises `DataError` naming the row and the item when it cannot be read.

    `modality` ("image", "audio", "video") only words the error messages.
    """
    context = context or MediaContext()
    if isinstance(item, bytes | bytearray | memoryview):
        return Blob(bytes(item), f"<{len(item)} bytes>")
    if isinstance(item, Mapping):
        return _read_mapping(item, modality, context)
    if isinstance(item, os.PathLike):
        return _read_path(os.fspath(item), modality, context)
    if not isinstance(item, str):
        raise context.error(
            modality,
            repr(item)[:80],
            f"cannot read a {type(item).__name__}; give a path, URL, data: URI, base64 or bytes",
        )
    text = item.strip()
    if text.startswith("data:"):
        return _read_data_uri(text, modality, context)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return _read_url(text, modality, context)
    if scheme == "file":
        return _read_path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path), modality, context)
    if len(text) >= _BASE64_MIN_CHARS and _BASE64.match(text) and not _is_file(_resolve(text, context)):
        return Blob(_b64decode(text, modality, "<base64>", context), "<base64>")
    return _read_path(text, modality, context)


def _read_mapping(item: Mapping[str, Any], modality: str, context: MediaContext) -> Blob:
    kind = item.get("type") or next((k for k in _PART_TYPES if k in item), None)
    if kind == "input_audio":
        payload = item.get("input_audio")
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise context.error(modality, "input_audio part", "needs input_audio.data (base64) and input_audio.format")
        return Blob(_b64decode(str(payload["data"]), modality, "input_audio part", context), "<input_audio>")
    if kind in _PART_TYPES and item.get(kind) is not None:
        payload = item[kind]
        if isinstance(payload, Mapping):
            payload = payload.get("url", payload.get("path"))
        if payload is None:
            raise context.error(modality, f"{kind} part", "names no url or path")
        return read_source(payload, modality, context)
    if item.get("bytes") is not None:  # the `datasets` Image/Audio feature's storage
        return Blob(bytes(item["bytes"]), str(item.get("path") or f"<{len(item['bytes'])} bytes>"))
    if item.get("path") is not None:
        return read_source(str(item["path"]), modality, context)
    raise context.error(
        modality,
        repr(dict(item))[:80],
        "is not a content part this version understands (image_url, input_audio, video_url, bytes/path)",
    )


def _resolve(path: str, context: MediaContext) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or context.base_dir is None else context.base_dir / p


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows: certainly not a file
        return False


def _read_path(path: str, modality: str, context: MediaContext) -> Blob:
    resolved = _resolve(path, context)
    shown = path if str(resolved) == path else f"{path} (resolved to {resolved})"
    try:
        data = resolved.read_bytes()
    except FileNotFoundError:
        raise context.error(modality, shown, "file does not exist") from None
    except OSError as exc:
        raise context.error(modality, shown, f"cannot be read ({exc.strerror or exc})") from None
    return Blob(data, path)


def _read_data_uri(uri: str, modality: str, context: MediaContext) -> Blob:
    header, sep, payload = uri[len("data:") :].partition(",")
    if not sep:
        raise context.error(modality, "data: URI", "has no ',' between its header and its data")
    mime, *params = header.split(";")
    name = f"<data:{mime or 'unknown'}>"
    if "base64" in params:
        return Blob(_b64decode(payload, modality, "data: URI", context), name)
    return Blob(urllib.parse.unquote_to_bytes(payload), name)


def _b64decode(text: str, modality: str, name: str, context: MediaContext) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise context.error(modality, name, f"is not valid base64 ({exc})") from None


def _read_url(url: str, modality: str, context: MediaContext) -> Blob:
    request = urllib.request.Request(url, headers={"User-Agent": "omni"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            return Blob(response.read(), url)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise context.error(modality, url, f"cannot be downloaded ({reason})") from None
