"""Qwen3-Omni's speech output: the talker turns the thinker's answer into codec frames and code2wav into a
24 kHz waveform, whole or in pieces while the talker is still speaking."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

# code2wav's output rate in the published model (24 kHz waveforms).
SPEECH_SAMPLING_RATE = 24000
# Most talker (codec) steps per allowed answer token: the talker speaks at 12.5 codec frames a second, and a
# text token takes well under a second to say, so speech is never cut short but a talker that does not stop
# (an untrained one) cannot run on for minutes.
CODEC_STEPS_PER_TOKEN = 16
# Streaming decodes the codec frames in pieces of this many (about a second of speech), each with up to
# LEFT_CONTEXT_FRAMES earlier frames before it, as code2wav's own chunked decoding does.
STREAM_CHUNK_FRAMES = 12
LEFT_CONTEXT_FRAMES = 25


class Speaker:
    """The checkpoint's talker and code2wav, speaking what its thinker answers.

    Called as a loaded model's ``speak`` function (see the `register_models` hook's documentation):
    ``speak(inputs, *, max_new_tokens, voice=None, text_streamer=None, on_audio=None, stopping_criteria=(),
    interrupt=())``
    returns (answer token ids, mono float32 waveform, sampling rate); `voices` names the speakers it has.
    """

    def __init__(self, whole: Any) -> None:
        self.whole = whole
        # The voice transformers speaks in by default first (Ethan in the published model), then the others.
        default = str(inspect.signature(whole.generate).parameters["speaker"].default).lower()
        speakers = list(whole.config.talker_config.speaker_id)
        self.voices: tuple[str, ...] = tuple(sorted(speakers, key=lambda name: name != default))
        self.sampling_rate = SPEECH_SAMPLING_RATE
        # transformers' talker lays out rotary positions of prompts with images or video and audio by reading an
        # `audio_config` its own config lacks (an AttributeError); the thinker's layout rule is the same one, over
        # the same token ids, and its config has the audio window it needs.
        whole.talker.get_rope_index = whole.thinker.get_rope_index

    def whole_model(self) -> Any:
        """The whole model (thinker, talker and code2wav) whose thinker answers: what an export saves."""
        return self.whole

    def __call__(
        self,
        inputs: dict[str, Any],
        *,
        max_new_tokens: int,
        voice: str | None = None,
        text_streamer: Any = None,
        on_audio: Callable[[np.ndarray], None] | None = None,
        stopping_criteria: Sequence[Any] = (),
        interrupt: Sequence[Any] = (),
    ) -> tuple[list[int], np.ndarray, int]:
        """Answer `inputs` (prompt ids, attention mask and media tensors) greedily, in text and speech.

        `text_streamer` (a transformers streamer) receives the answer's tokens as the thinker writes them;
        `on_audio` receives each piece of waveform as soon as code2wav has decoded it, and the pieces make the
        returned waveform. `stopping_criteria` end the thinker's answer (stop strings ...); `interrupt` criteria,
        which must not read the tokens (a consumer gone), end the answer and its speech alike.
        """
        whole = self.whole
        width = inputs["input_ids"].shape[1]
        stream = _CodecStream(whole.code2wav, on_audio) if on_audio is not None else None
        hook = whole.talker.register_forward_hook(stream.on_talker_step) if stream is not None else None
        try:
            with torch.inference_mode():
                text_ids, waveform = whole.generate(
                    **inputs,
                    speaker=voice or self.voices[0],
                    return_audio=True,
                    thinker_max_new_tokens=max_new_tokens,
                    thinker_do_sample=False,
                    thinker_eos_token_id=whole.generation_config.eos_token_id,
                    thinker_streamer=text_streamer,
                    thinker_stopping_criteria=[*stopping_criteria, *interrupt],
                    talker_do_sample=False,
                    talker_max_new_tokens=CODEC_STEPS_PER_TOKEN * max_new_tokens,
                    # transformers collects codec frames from the talker's decode steps only: one that stops at its
                    # first step (an untrained talker may) would leave none, so it takes at least one.
                    talker_min_new_tokens=2,
                    talker_stopping_criteria=list(interrupt),
                )
        finally:
            if hook is not None:
                hook.remove()
        if stream is not None:
            wave = stream.finish()
        else:
            wave = waveform.reshape(-1).float().cpu().numpy() if waveform is not None else np.zeros(0, np.float32)
        return text_ids[0, width:].tolist(), wave, self.sampling_rate


class _CodecStream:
    """Decodes the talker's codec frames into waveform pieces while it generates.

    transformers hands each step's frame (every code group) out of the talker's forward pass and stacks them
    all once it has finished; a forward hook sees each as it comes, and every `STREAM_CHUNK_FRAMES` of them are
    decoded at once (code2wav is causal: earlier frames give the left context).
    """

    def __init__(self, code2wav: Any, on_audio: Callable[[np.ndarray], None]) -> None:
        self.code2wav = code2wav
        self.on_audio = on_audio
        self.frames: list[torch.Tensor] = []
        self.decoded = 0
        self.pieces: list[np.ndarray] = []

    def on_talker_step(self, module: Any, args: Any, output: Any) -> None:
        frame = output.hidden_states[-1]  # (batch, code groups), None at the prompt's step
        if frame is not None:
            self.frames.append(frame)
            if len(self.frames) - self.decoded >= STREAM_CHUNK_FRAMES:
                self._decode(len(self.frames))

    def finish(self) -> np.ndarray:
        """Decode the frames left and return the whole waveform."""
        if len(self.frames) > self.decoded:
            self._decode(len(self.frames))
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)

    def _decode(self, end: int) -> None:
        context = min(self.decoded, LEFT_CONTEXT_FRAMES)
        codes = torch.stack(self.frames[self.decoded - context : end], dim=-1)  # (batch, code groups, frames)
        with torch.inference_mode():
            wave = self.code2wav(codes)[..., context * int(self.code2wav.total_upsample) :]
        piece = wave.reshape(-1).float().cpu().numpy()
        self.decoded = end
        self.pieces.append(piece)
        self.on_audio(piece)
