"""What a person watching a run sees: one progress bar with loss, tokens/s and time left."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class ThroughputCallback(TrainerCallback):
    """Adds ``tokens_per_second`` (real, non-pad tokens since the previous log) to every training log.

    Registered before the callbacks that print or store logs, so they see the figure.
    """

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict | None = None, **kw: Any
    ) -> None:
        if logs is None or "loss" not in logs or self._last is None:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        last_time, last_tokens = self._last
        if now > last_time:
            logs["tokens_per_second"] = round((tokens - last_tokens) / (now - last_time), 1)
        logs["num_tokens_seen"] = tokens
        self._last = (now, tokens)


class ProgressBarCallback(TrainerCallback):
    """A tqdm bar over optimizer steps; its postfix shows the latest loss, learning rate and tokens/s.

    Evaluation results are printed as one line above the bar.
    """

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict | None = None, **kw: Any
    ) -> None:
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.4f}", "lr": f"{logs.get('learning_rate', 0):.2e}"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:.0f}"
            if "peak_memory_gib" in logs:
                postfix["mem"] = f"{logs['peak_memory_gib']:.2f}GiB"
            self.bar.set_postfix(postfix, refresh=False)
        elif "eval_loss" in logs:
            self.bar.write(f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}")

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
