"""`OmniGRPOTrainer`: TRL's GRPOTrainer with rollouts from an omni engine, the family's advantages, DAPO's
dynamic sampling, generation-vs-training time in the logs, and a completions table beside the checkpoints.

TRL computes the rewards, group statistics, KL and clipped loss; omni changes only what it must:
- generation goes through `EngineRollout` (TRL's `rollout_func` hook), with prompts from omni's template;
- RLOO rescales TRL's group-centred advantages by G/(G-1), which makes each baseline the siblings' mean;
- dynamic sampling, which TRL does not have, swaps groups whose rewards are all equal for fresh groups;
- prompts with images, audio or video carry their media into the training forward (`media.py`);
- with `--async-generate`, the next generation batch is rolled out while the current step trains.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from omni.api import Engine
from transformers import TrainerCallback
from trl import GRPOTrainer

from omni_plugin_grpo.algorithms import Algorithm
from omni_plugin_grpo.columns import ROW_INDEX
from omni_plugin_grpo.media import MEDIA, PromptMedia, needs_whole_forward, whole_forward_logps
from omni_plugin_grpo.multiturn import EnvironmentRollout
from omni_plugin_grpo.options import GrpoOptions
from omni_plugin_grpo.rollout import EngineRollout

COMPLETIONS_FILE = "completions.jsonl"
# Output fields of a generation batch that dynamic sampling knows how to recombine (TRL's text fields, omni's media).
_PER_ROW_FIELDS = {
    "prompt_ids",
    "prompt_mask",
    "completion_ids",
    "completion_mask",
    "advantages",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "importance_sampling_ratio",
    MEDIA,
}


class OmniGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for every member of the family; `algorithm` and `options` say which and how."""

    def __init__(
        self,
        *args: Any,
        rollout: EngineRollout | EnvironmentRollout,
        rows: Sequence[dict[str, Any]],
        algorithm: Algorithm,
        options: GrpoOptions,
        media: PromptMedia | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rollout = rollout
        self.rows = rows  # omni's rows; the datasets hold their indices (`omni_row`)
        self.algorithm = algorithm
        self.options = options
        self.media = media  # None when no prompt has images, audio or video
        # The media of the samples being scored (None: text only); read by `_get_per_token_logps_and_entropies`.
        self._forward_media: list[dict[str, Any]] | None = None
        # Log-probs from the model's logits where TRL's fused LM head cannot see the media or run the model.
        self._whole_forward = media is not None or needs_whole_forward(self.model)
        # Set after construction: TRL's constructor warns that `rollout_func` is experimental, and the hook is
        # the one place to generate with prompts TRL has not tokenized.
        self.rollout_func = self._generate_with_engine
        self._batch_rows: list[int] = []
        self._synced_step: int | None = None
        self._generation_seconds = 0.0
        self._step_seconds = [0.0, 0.0]  # generation, training within the current optimizer step
        self._last_rewards: torch.Tensor | None = None
        self._rng = random.Random(self.args.seed)
        self._completions: list[dict[str, Any]] = []
        # --async-generate: the next generation batch taken from the epoch's iterator ahead of its step, and the
        # rollouts of a batch started before its step (its row indices, the future of its `Rollouts`).
        self._next_batch: tuple[Iterator, Any] | None = None
        self._ahead: tuple[list[int], Future] | None = None
        self._ahead_pool = (
            ThreadPoolExecutor(1, thread_name_prefix="omni-rollout-ahead") if options.async_generate else None
        )

    @property
    def engine(self) -> Engine:
        return self.rollout.engine

    # --- rollouts -----------------------------------------------------------------------------------------

    def _generate_with_engine(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """TRL's `rollout_func`: completions for the batch being scored (`_batch_rows` holds its row indices).

        With `--async-generate`, a training batch whose rollouts were started during the previous step takes those
        (sampled with the weights of one optimizer step before); then the engine takes the current weights and
        the next batch's rollouts start in the background, to be ready when its step comes.
        """
        from trl.models.utils import unwrap_model_for_generation

        start = time.perf_counter()
        batch_rows = list(self._batch_rows)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (ahead[0] != batch_rows or not self.model.training):
            self._ahead = ahead  # another batch (a dynamic-sampling refill, an evaluation): keep it for its step
            ahead = None
        # Under DeepSpeed ZeRO-3 this gathers the partitioned weights for the rollouts (and for the engine to
        # copy); elsewhere it only unwraps the model. Always gathered: the pt engine generates in inference mode,
        # where ZeRO-3's layer-by-layer gathering would make parameters that backward cannot use.
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator, gather_deepspeed3_params=True) as model:
            if ahead is not None:
                out = ahead[1].result()  # sampled with the weights the engine had before this step
            else:
                self._sync_engine(model)
                was_training = model.training
                model.eval()  # no dropout while sampling; gradient checkpointing only applies in training mode
                try:
                    out = self.rollout.generate(batch_rows, [self.rows[i] for i in batch_rows])
                finally:
                    model.train(was_training)
            self._start_next_batch(model)
        self._generation_seconds += time.perf_counter() - start
        return {"prompt_ids": out.prompt_ids, "completion_ids": out.completion_ids, "logprobs": None, **out.extras}

    def _sync_engine(self, model: Any) -> None:
        """After every optimizer step, before the engine generates again: the engine takes the new weights (a
        no-op for the pt engine, which generates with this very model)."""
        if self._synced_step != self.state.global_step:
            self.engine.load_weights(model)
            self._synced_step = self.state.global_step

    def _start_next_batch(self, model: Any) -> None:
        """With `--async-generate`, start rolling out the next training step's batch (taken ahead from the epoch's
        iterator by `get_batch_samples`) with the current weights, unless it is running already or there is no
        next step."""
        if self._ahead_pool is None or self._next_batch is None or not self.model.training:
            return
        if self.state.global_step + 1 >= self.state.max_steps:
            return
        rows = [int(x[ROW_INDEX]) for x in self._next_batch[1]]
        if self._ahead is not None and self._ahead[0] == rows:
            return
        self._sync_engine(model)
        self._ahead = (rows, self._ahead_pool.submit(self.rollout.generate, rows, [self.rows[i] for i in rows]))

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int, device: Any) -> tuple[list, Any]:
        """Transformers' batches for one optimizer step; with `--async-generate`, the next step's first batch is
        taken too and kept (it is handed out first at the next call), so its rollouts can start early."""
        if self._ahead_pool is None:
            return super().get_batch_samples(epoch_iterator, num_batches, device)
        batches = []
        if self._next_batch is not None and self._next_batch[0] is epoch_iterator:
            batches.append(self._next_batch[1])
        self._next_batch = None
        for _ in range(num_batches - len(batches)):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        try:
            self._next_batch = (epoch_iterator, next(epoch_iterator))
        except StopIteration:
            pass  # the epoch ends with this step: the next one's first batch is rolled out when it comes
        return batches, self._get_num_items_in_batch(batches, device)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        finally:
            if self._ahead is not None:  # rollouts of a batch no step took (training stopped early): let them end
                self._ahead[1].exception()
                self._ahead = None
            if self._ahead_pool is not None:
                self._ahead_pool.shutdown()

    def _score(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Generate and score one batch with TRL, then apply the algorithm's advantage estimator."""
        self._batch_rows = [int(x[ROW_INDEX]) for x in inputs]
        media = self.media.for_rows(self._batch_rows) if self.media is not None else None
        self._forward_media = media  # old and reference log-probs are computed inside TRL's scoring
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._forward_media = None
        if media is not None:
            output[MEDIA] = media
        output = self._estimate_advantages(output)
        self._record_completions(len(inputs))
        return output

    def _estimate_advantages(self, output: dict[str, Any]) -> dict[str, Any]:
        """The scored batch with the algorithm's advantages: TRL's group-centred ones, rescaled for RLOO."""
        groups = self._group_size()
        if self.algorithm.leave_one_out and groups > 1:
            # TRL gave r - mean(group); RLOO's r - mean(others) is that times G / (G - 1).
            output["advantages"] = output["advantages"] * (groups / (groups - 1))
        return output

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = self._score(inputs)
        if self.model.training and self.options.dynamic_sample:
            output = self._refill_flat_groups(output)
        return output

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
        per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weighted = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        weighted[torch.isnan(per_func).all(dim=1)] = torch.nan
        self._last_rewards = weighted
        return per_func

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        self._forward_media = inputs.get(MEDIA)
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._forward_media = None

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **image_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if not self._whole_forward:
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **image_kwargs,
            )
        media = self._forward_media if self._forward_media is not None else [{}] * input_ids.size(0)
        return whole_forward_logps(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            media,
            temperature=self.temperature,
            batch_size=batch_size or input_ids.size(0),
            compute_entropy=compute_entropy,
            compute_aux_loss=compute_aux_loss,
            autocast=self.accelerator.autocast,
            media_tokens=self.rollout.media_tokens,
            pad_token_id=self._tokenizer.pad_token_id,
        )

    def _group_size(self) -> int:
        return self.num_generations if self.model.training else self.num_generations_eval

    # --- dynamic sampling (DAPO) --------------------------------------------------------------------------

    def _groups_with_signal(self) -> torch.Tensor:
        """Per group of the last scored batch: whether its rewards differ (a flat group has zero advantage)."""
        assert self._last_rewards is not None
        grouped = self._last_rewards.view(-1, self._group_size())
        spread = torch.nan_to_num(grouped.nan_to_num(float("-inf")).amax(1) - grouped.nan_to_num(float("inf")).amin(1))
        return spread > 1e-6

    def _refill_flat_groups(self, output: dict[str, Any]) -> dict[str, Any]:
        """Replace groups whose rewards are all equal with groups of fresh prompts that do carry a signal,
        sampling up to `max_resample_times` more batches; flat groups left over keep zero advantage.

        With several processes every decision is taken on the whole batch, identically everywhere: TRL gathers
        the rewards of all processes (so groups are the global batch's), the fresh prompts come from a generator
        seeded alike on every process, each process scores an equal share of them, and the scored fresh groups
        are gathered so that each process takes the samples that land in its own part of the batch.
        """
        if set(output) - _PER_ROW_FIELDS - {"num_items_in_batch"}:
            return output  # tool fields: recombining them is not supported, keep the batch as is
        good = self._groups_with_signal().clone()
        flat_at_start = int((~good).sum())
        size = self._group_size()
        processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        offset = rank * len(output["completion_ids"])  # where this process's samples sit in the whole batch
        for _ in range(self.options.max_resample_times):
            flat = (~good).nonzero().flatten().tolist()
            if not flat:
                break
            groups = len(flat)
            while (groups * size) % processes:  # an equal share for every process: a group or two more
                groups += 1
            picks = [self._rng.randrange(len(self.train_dataset)) for _ in range(groups)]
            fresh = [dict(self.train_dataset[pick]) for pick in picks for _ in range(size)]
            share = len(fresh) // processes
            extra = self._score(fresh[rank * share : (rank + 1) * share])
            donors = self._groups_with_signal().nonzero().flatten().tolist()
            pairs = list(zip(flat, donors, strict=False))
            if pairs:
                whole = self._gather_batch(extra)
                output = _replace_groups(output, whole, pairs, size, self._tokenizer.pad_token_id, offset)
                good[[d for d, _ in pairs]] = True
        # TRL normalises the token-level loss by the completion tokens of all processes.
        output["num_items_in_batch"] = self.accelerator.gather(output["completion_mask"].sum()).sum()
        self._metrics["train"]["dynamic_sampling/flat_groups"].append(float(flat_at_start))
        self._metrics["train"]["dynamic_sampling/flat_groups_left"].append(float((~good).sum()))
        return output

    def _gather_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Every process's part of a scored batch, joined in process order (the batch's global order):
        sequences padded to the widest (prompts on the left), per-sample media gathered as objects."""
        from accelerate.utils import gather_object

        whole: dict[str, Any] = {}
        for key, value in batch.items():
            if key == "num_items_in_batch" or value is None:
                continue
            if isinstance(value, list):
                whole[key] = gather_object(value) if self.accelerator.num_processes > 1 else value
                continue
            if value.dim() >= 2:
                pad = self._tokenizer.pad_token_id if key.endswith("_ids") else 0
                value = self.accelerator.pad_across_processes(
                    value, dim=1, pad_index=pad, pad_first=key.startswith("prompt")
                )
            whole[key] = self.accelerator.gather(value)
        return whole

    # --- timing and the completions table -----------------------------------------------------------------

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        generated_before = self._generation_seconds
        start = time.perf_counter()
        loss = super().training_step(model, inputs, num_items_in_batch)
        generation = self._generation_seconds - generated_before
        self._step_seconds[0] += generation
        self._step_seconds[1] += time.perf_counter() - start - generation
        if self._step % self.current_gradient_accumulation_steps == 0:
            self._metrics["train"]["time/generation"].append(self._step_seconds[0])
            self._metrics["train"]["time/training"].append(self._step_seconds[1])
            self._step_seconds = [0.0, 0.0]
        return loss

    def _record_completions(self, count: int) -> None:
        """Keep a sample of the batch just scored (from TRL's completion log) for completions.jsonl."""
        keep = min(count, self.options.completions_per_step)
        if keep <= 0 or not self.model.training:
            return
        logs = self._logs
        prompts, completions = list(logs["prompt"])[-count:], list(logs["completion"])[-count:]
        advantages = list(logs["advantages"])[-count:]
        rewards = {name: list(values)[-count:] for name, values in logs["rewards"].items()}
        for i in range(keep):
            self._completions.append(
                {
                    "step": self.state.global_step,
                    "prompt": prompts[i],
                    "completion": completions[i],
                    "rewards": {name: _number(values[i]) for name, values in rewards.items()},
                    "advantage": _number(advantages[i]),
                }
            )

    def write_completions(self, directory: str | Path) -> Path | None:
        """Write the recorded completions to `directory`/completions.jsonl atomically (replace, never append)."""
        if not self._completions or not self.accelerator.is_main_process:
            return None
        path = Path(directory) / COMPLETIONS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for record in self._completions:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        return path

    def load_completions(self, checkpoint: str | Path) -> None:
        """Continue the table a checkpoint saved (when resuming), so the output keeps the whole run's sample."""
        path = Path(checkpoint) / COMPLETIONS_FILE
        if path.is_file():
            self._completions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        if self.model.training:
            self.write_completions(self.args.output_dir)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        self.write_completions(Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}")


def _number(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN (no score) as JSON null


def _pad_to(t: torch.Tensor, width: int, *, left: bool, value: float) -> torch.Tensor:
    missing = width - t.shape[1]
    if missing <= 0:
        return t
    pad = t.new_full((t.shape[0], missing, *t.shape[2:]), value)
    return torch.cat([pad, t] if left else [t, pad], dim=1)


def _replace_groups(
    output: dict[str, Any], extra: dict[str, Any], pairs: list[tuple[int, int]], size: int, pad_id: int, offset: int = 0
) -> dict[str, Any]:
    """`output` with group `dst` replaced by group `src` of `extra` for each (dst, src) pair; sequences are
    re-padded to the wider of the two batches (prompts on the left, completions on the right).

    Groups count in the whole batch; `output` holds its samples from `offset` on (one process's part) and only
    those are replaced, while `extra` is the whole fresh batch."""
    local = len(output["completion_ids"])
    moves = [
        (d * size + k - offset, s * size + k)
        for d, s in pairs
        for k in range(size)
        if offset <= d * size + k < offset + local
    ]
    merged: dict[str, Any] = {key: value for key, value in output.items() if key != "num_items_in_batch"}
    if not moves:
        return merged
    dst = torch.tensor([d for d, _ in moves])
    src = torch.tensor([s for _, s in moves])
    for key, value in merged.items():
        if value is None:
            continue
        other = extra[key]
        if isinstance(value, list):  # per-sample media
            value = list(value)
            for d, s in moves:
                value[d] = other[s]
            merged[key] = value
            continue
        if value.dim() >= 2:
            width = max(value.shape[1], other.shape[1])
            left = key.startswith("prompt")
            pad = pad_id if key.endswith("_ids") else 0
            value, other = (_pad_to(t, width, left=left, value=pad) for t in (value, other))
        value = value.clone()
        value[dst.to(value.device)] = other[src.to(other.device)].to(value.device)
        merged[key] = value
    return merged


class DropReferenceAdapter(TrainerCallback):
    """Remove the frozen copy of the adapter TRL keeps as the KL reference ("ref") when training ends, so
    only the trained adapter is saved (TRL adds it when a LoRA model arrives with `--beta` > 0)."""

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if "ref" in getattr(model, "peft_config", {}):
            model.delete_adapter("ref")
