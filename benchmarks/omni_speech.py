"""Speech output speed of the pt engine on the tiny Qwen3-Omni with a talker: seconds of speech generated per
second of wall time, whole (`Engine.speak`) and streamed (`Engine.speak_stream`, code2wav decoding a second of
speech at a time while the talker goes on), beside the same engine's text-only tokens/s, in one run.

    .venv/bin/python benchmarks/omni_speech.py                  # 5 runs of each, 8 answer tokens, 1 thread
    .venv/bin/python benchmarks/omni_speech.py --max-new-tokens 16 --runs 3 --threads 2

Every request is the same image + audio question, answered greedily, so each mode does the same work; the
talker of the random tiny model speaks until its limit (16 codec steps per allowed answer token, 12.5 steps a
second of 24 kHz speech) or until it happens to end. Figures are medians over the runs, after one warm-up run
of each mode; the modes take turns. Streamed runs also report the time to the first piece of speech.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def write_media(directory: Path) -> tuple[Path, Path]:
    import numpy as np
    import soundfile
    from omni.testing.synthetic import draw_shape, draw_tone

    rng = np.random.default_rng(0)
    image, audio = directory / "shape.png", directory / "tone.wav"
    draw_shape(rng, (220, 40, 40), 64).save(image)
    soundfile.write(audio, draw_tone(rng, (150.0, 400.0), 16000, 1.0), 16000, subtype="PCM_16")
    return image, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from omni.api import GenerationConfig, InferRequest, PtEngine, SpeechDelta, SpokenAnswer
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        image, audio = write_media(folder)
        engine = PtEngine(str(build_tiny_qwen3_omni(folder / "model", with_talker=True)))
        row = {
            "messages": [{"role": "user", "content": "<image><audio>Answer the spoken question about the picture."}],
            "images": [str(image)],
            "audios": [str(audio)],
        }
        request = InferRequest(row, GenerationConfig(max_new_tokens=args.max_new_tokens))

        def text_only() -> dict[str, float]:
            (response,) = engine.generate([request])
            return {"tokens": response.completion_tokens}

        def whole() -> dict[str, float]:
            answer = engine.speak(request)
            return {"tokens": len(answer.token_ids), "speech": len(answer.waveform) / answer.sampling_rate}

        def streamed() -> dict[str, float]:
            start, first = time.perf_counter(), None
            for item in engine.speak_stream(request):
                if isinstance(item, SpeechDelta) and item.audio is not None and first is None:
                    first = time.perf_counter() - start
                if isinstance(item, SpokenAnswer):
                    answer = item
            speech = len(answer.waveform) / answer.sampling_rate
            return {"tokens": len(answer.token_ids), "speech": speech, "first": first}

        def measured(run) -> dict[str, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            figures = run()
            return {**figures, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

        modes = {"text only": text_only, "speech, whole": whole, "speech, streamed": streamed}
        for run in modes.values():
            measured(run)  # warm-up
        # The modes take turns, so a busy spell of the shared machine slows all of them alike.
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        for _ in range(args.runs):
            for mode, run in modes.items():
                results[mode].append(measured(run))
        engine.close()

    print(f"tiny Qwen3-Omni with talker, pt engine, {args.threads} thread(s), image + audio question,")
    print(
        f"at most {args.max_new_tokens} answer tokens; medians of {args.runs} runs (CPU s: this process, all threads)"
    )
    header = ("mode", "wall s", "CPU s", "tokens/s", "speech s", "speech s/s", "speech s/CPU s", "first audio s")
    print(f"{header[0]:<18}" + "".join(f"{h:>15}" for h in header[1:]))
    for mode, runs in results.items():
        spoken = "speech" in runs[0]
        cells = [
            statistics.median(r["wall"] for r in runs),
            statistics.median(r["cpu"] for r in runs),
            statistics.median(r["tokens"] / r["wall"] for r in runs),
            statistics.median(r["speech"] for r in runs) if spoken else None,
            statistics.median(r["speech"] / r["wall"] for r in runs) if spoken else None,
            statistics.median(r["speech"] / r["cpu"] for r in runs) if spoken else None,
            statistics.median(r["first"] for r in runs) if "first" in runs[0] else None,
        ]
        print(f"{mode:<18}" + "".join(f"{'-':>15}" if c is None else f"{c:>15.2f}" for c in cells))


if __name__ == "__main__":
    main()
