"""The built-in image, audio and video encoders: every source form, resampling, frame sampling, errors."""

from __future__ import annotations

import base64
import importlib.util
import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from omni.encoders.audio import load_audio, resample
from omni.encoders.image import load_image
from omni.encoders.sources import MediaContext, read_source
from omni.encoders.video import load_video, sample_times
from omni.errors import DataError
from omni.testing.synthetic import draw_motion, write_video
from PIL import Image

RED = (220, 40, 40)
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="video files need PyAV (pip install av)")


def tone(frequency: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[np.argmax(np.abs(np.fft.rfft(wave)))])


@pytest.fixture
def media(tmp_path):
    """A dataset folder with a PNG (RGBA), a 44.1 kHz stereo WAV and (with PyAV) an MP4 with an audio track."""
    folder = tmp_path / "data"
    (folder / "media").mkdir(parents=True)
    Image.new("RGBA", (8, 6), (*RED, 255)).save(folder / "media" / "red.png")
    stereo = np.stack([tone(440, 44100), tone(440, 44100)], axis=1)
    soundfile.write(folder / "media" / "a440.wav", stereo, 44100)
    if importlib.util.find_spec("av") is not None:
        frames = draw_motion(np.random.default_rng(0), "right", frames=8, size=32)
        write_video(folder / "media" / "dot.mp4", frames, fps=4, audio=tone(440, 16000, 2.0))
    return folder


def data_uri(path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


SOURCE_FORMS = ["path", "relative", "file-url", "data-uri", "base64", "bytes", "content-part", "datasets-dict"]


def source_form(form: str, folder, relative: str, mime: str, part_type: str):
    """The same file written the way `form` says, plus the context that reads it."""
    path = folder / relative
    encoded = base64.b64encode(path.read_bytes()).decode()
    forms = {
        "path": str(path),
        "relative": relative,
        "file-url": path.as_uri(),
        "data-uri": data_uri(path, mime),
        "base64": encoded,
        "bytes": path.read_bytes(),
        "datasets-dict": {"bytes": path.read_bytes(), "path": path.name},
        "content-part": {"type": part_type, part_type: {"url": data_uri(path, mime)}},
    }
    return forms[form], MediaContext("data/train.jsonl", 3, base_dir=folder)


@pytest.mark.parametrize("form", SOURCE_FORMS)
def test_image_from_every_source_form(media, form):
    item, context = source_form(form, media, "media/red.png", "image/png", "image_url")
    image = load_image(item, context=context)
    assert image.mode == "RGB" and image.size == (8, 6)
    assert image.getpixel((0, 0)) == RED


def test_image_transparency_becomes_white():
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert load_image(clear).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("form", SOURCE_FORMS)
def test_audio_from_every_source_form(media, form):
    item, context = source_form(form, media, "media/a440.wav", "audio/wav", "audio_url")
    wave = load_audio(item, sampling_rate=16000, context=context)
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size == 16000
    assert peak_hz(wave, 16000) == pytest.approx(440, abs=1)


def test_audio_from_openai_input_audio_part(media):
    encoded = base64.b64encode((media / "media" / "a440.wav").read_bytes()).decode()
    wave = load_audio({"type": "input_audio", "input_audio": {"data": encoded, "format": "wav"}})
    assert wave.size == 16000 and peak_hz(wave, 16000) == pytest.approx(440, abs=1)


def test_resampling_keeps_the_tone():
    down = resample(tone(440, 44100), 44100, 16000)
    assert down.size == 16000
    assert peak_hz(down, 16000) == pytest.approx(440, abs=1)
    assert np.abs(down[200:-200] - tone(440, 16000)[200:-200]).max() < 1e-3
    up = resample(down, 16000, 44100)
    assert up.size == 44100 and peak_hz(up, 44100) == pytest.approx(440, abs=1)


def test_resampling_removes_what_the_new_rate_cannot_hold():
    # 9 kHz is above 16 kHz's Nyquist frequency: it must vanish, not fold back to 7 kHz.
    assert np.abs(resample(tone(9000, 44100), 44100, 16000)[200:-200]).max() < 0.02


@needs_av
@pytest.mark.parametrize("form", ["path", "relative", "data-uri", "bytes", "content-part"])
def test_video_from_source_forms(media, form):
    item, context = source_form(form, media, "media/dot.mp4", "video/mp4", "video_url")
    video = load_video(item, fps=4, context=context)
    assert len(video.frames) == 8 and video.fps == pytest.approx(4)


def dot_column(frame: Image.Image) -> int:
    """The column where the (black) dot is darkest."""
    return int(np.argmin(np.asarray(frame.convert("L")).min(axis=0)))


@needs_av
def test_video_frames_are_sampled_at_the_rate_in_time_order(media):
    video = load_video(media / "media" / "dot.mp4", fps=2)
    assert len(video.frames) == 4 and video.timestamps == sorted(video.timestamps)
    columns = [dot_column(f) for f in video.frames]
    assert columns == sorted(columns) and columns[0] < columns[-1]  # the dot moves right
    assert video.arrays().shape == (4, 32, 32, 3)


@needs_av
def test_video_max_frames_spreads_over_the_clip(media):
    video = load_video(media / "media" / "dot.mp4", fps=4, max_frames=3)
    assert len(video.frames) == 3
    assert video.timestamps[0] < 0.5 and video.timestamps[-1] > 1.25


def test_video_files_without_pyav_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` fail
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 16)
    with pytest.raises(
        DataError, match=r"^d.jsonl:5: video clip.mp4: decoding video files needs PyAV: pip install av$"
    ):
        load_video("clip.mp4", context=MediaContext("d.jsonl", 5, base_dir=tmp_path))


def test_sample_times():
    assert sample_times(2.0, 2.0, 32) == [0.25, 0.75, 1.25, 1.75]
    assert sample_times(2.0, 2.0, 2) == [0.5, 1.5]
    assert sample_times(0.1, 1.0, 32) == [0.05]  # at least one frame


@needs_av
def test_video_audio_track_only_when_asked(media):
    assert load_video(media / "media" / "dot.mp4").audio is None
    video = load_video(media / "media" / "dot.mp4", with_audio=True, sampling_rate=16000)
    assert video.sampling_rate == 16000 and video.audio.dtype == np.float32
    assert video.audio.size == pytest.approx(32000, rel=0.1)
    assert peak_hz(video.audio, 16000) == pytest.approx(440, abs=2)


@needs_av
def test_video_without_audio_track_gives_none(tmp_path):
    path = write_video(tmp_path / "silent.mp4", draw_motion(np.random.default_rng(0), "left", 4, 32), fps=4)
    assert load_video(path, with_audio=True).audio is None


def test_video_as_list_of_frames(media, tmp_path):
    frames = draw_motion(np.random.default_rng(1), "left", frames=6, size=32)
    paths = []
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"f{i}.png")
        paths.append(f"f{i}.png")
    video = load_video(paths, fps=2, max_frames=3, context=MediaContext(base_dir=tmp_path))
    assert len(video.frames) == 3
    columns = [dot_column(f) for f in video.frames]
    assert columns == sorted(columns, reverse=True)  # the dot moves left


def test_missing_file_names_the_row_and_the_file(tmp_path):
    context = MediaContext(str(tmp_path / "train.jsonl"), 7, base_dir=tmp_path)
    for load, name in ((load_image, "cat.png"), (load_audio, "meow.wav"), (load_video, "clip.mp4")):
        with pytest.raises(DataError) as caught:
            load(name, context=context)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / 'train.jsonl'}:7: ")
        assert name in message and str(tmp_path / name) in message and "does not exist" in message


@needs_av
def test_unreadable_media_names_the_row_and_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    context = MediaContext("train.jsonl", 2, base_dir=tmp_path)
    with pytest.raises(DataError, match=r"^train.jsonl:2: image notes.png: is not a readable image"):
        load_image("notes.png", context=context)
    with pytest.raises(DataError, match=r"^train.jsonl:2: audio notes.png: is not readable audio"):
        load_audio("notes.png", context=context)
    with pytest.raises(DataError, match=r"^train.jsonl:2: video notes.png: is not a readable video"):
        load_video("notes.png", context=context)


def test_bad_inline_data_is_a_data_error():
    with pytest.raises(DataError, match="not valid base64"):
        load_image("data:image/png;base64,@@@")
    with pytest.raises(DataError, match="needs input_audio.data"):
        load_audio({"type": "input_audio", "input_audio": {}})


def test_context_of_a_dataset_row(tmp_path):
    from omni.data.rows import Row

    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("{}\n")
    context = MediaContext.of_row(Row({}, str(jsonl), 4))
    assert (context.source, context.location, context.base_dir) == (str(jsonl), 4, tmp_path)
    assert MediaContext.of_row({"messages": []}).location is None


def test_http_url_is_fetched_with_a_timeout(monkeypatch):
    import urllib.request

    seen = {}

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(request, timeout):
        seen.update(url=request.full_url, timeout=timeout)
        buffer = io.BytesIO()
        Image.new("RGB", (3, 3), RED).save(buffer, format="PNG")
        return Response(buffer.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert load_image("https://example.com/red").getpixel((1, 1)) == RED
    assert seen == {"url": "https://example.com/red", "timeout": 20.0}
    assert read_source("https://example.com/red", "image").name == "https://example.com/red"


def test_unreachable_url_is_a_data_error(monkeypatch):
    import urllib.error
    import urllib.request

    def refuse(request, timeout):
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(
        DataError, match=r"image https://example.com/x.png: cannot be downloaded \(connection refused\)"
    ):
        load_image("https://example.com/x.png", context=MediaContext("d.jsonl", 1))


def test_encoders_are_registered_without_importing_decoders():
    probe = (
        "import sys; from omni.plugins import load_plugins; host = load_plugins({'OMNI_PLUGINS': ''}); "
        "print(host.registry.names('encoders'), "
        "[m for m in ('PIL', 'soundfile', 'av', 'torch') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "['audio', 'image', 'video'] []"


@needs_av
def test_registered_encoders_load(omni_host, media):
    load = {name: omni_host.registry.get("encoders", name).spec.load() for name in ("image", "audio", "video")}
    assert load["image"](media / "media" / "red.png").size == (8, 6)
    assert load["audio"](media / "media" / "a440.wav").size == 16000
    options = omni_host.registry.get("encoders", "video").spec.default_options()
    assert len(load["video"](media / "media" / "dot.mp4", fps=options.fps, max_frames=options.max_frames).frames) == 4
