"""PPO (`--algo ppo`, ms-swift `--rlhf_type ppo`): the GRPO family's rollouts and rewards, with a value model
and GAE in place of group-relative advantages.

RLHF's PPO as TRL's former PPOTrainer ran it (TRL 1.16 has none, `trl.experimental` included):
- each completion's score (the weighted rewards, typically `--reward-model`) is its reward at its last token, and
  every token is charged `--kl-coef` times its log-ratio to the reference model;
- a value model (a reward model's backbone and score head, read at every position) estimates each token's return;
  GAE (`--gamma`, `--lam`) turns rewards and values into token advantages, whitened over the batch;
- each generated batch is trained for `--num-ppo-epochs` optimizer steps on the clipped policy loss plus
  `--vf-coef` times the clipped value loss; the value model is trained by the same optimizer, in its own group.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from omni.api import (
    ModelOptions,
    OmniError,
    TrainingJob,
    atomic_directory,
    load_model,
    log_line,
)

from omni_plugin_grpo.options import PpoOptions
from omni_plugin_grpo.trainer import OmniGRPOTrainer

VALUE_MODEL_DIR = "value_model"


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True) -> torch.Tensor:
    """`values` scaled to unit variance over the masked entries (and centred unless `shift_mean` is False)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over completion tokens (Schulman et al. 2016): (advantages, returns), both zero outside `mask`.

    `mask` marks each completion's tokens from position 0; the value after a completion's last token is 0."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    width = rewards.size(1)
    for t in reversed(range(width)):
        next_value = values[:, t + 1] if t + 1 < width else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def token_values(value_model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int) -> torch.Tensor:
    """The value model's estimate before each of the last `keep` tokens (the state each completion token was
    sampled in), as float32: its backbone's hidden states read by its score head."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return value_model.score(hidden[:, -keep - 1 : -1]).squeeze(-1).float()


def joined_sequences(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(ids, attention mask, completion width) of a scored batch's prompts and completions side by side."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    return ids, attention_mask, batch["completion_ids"].size(1)


def load_value_model(job: TrainingJob, options: PpoOptions) -> Any:
    """The value model, trainable: the resumed checkpoint's, else `--value-model`, else the first
    `--reward-model` (its score head already ranks answers), else the policy with a fresh score head."""
    from omni_plugin_grpo.rewards.reward_model import has_score_head, load_scorer

    saved = Path(job.resume_from) / VALUE_MODEL_DIR if job.resume_from else None
    if saved is not None and saved.is_dir():
        path = str(saved)
    else:
        path = options.value_model or (options.reward_model[0] if options.reward_model else job.model_path)
    folder = Path(path).expanduser()
    is_adapter = folder.is_dir() and not (folder / "config.json").is_file()
    if has_score_head(folder, is_adapter):
        model, _ = load_scorer(path, job.registry, flag="--value-model")
    elif is_adapter:
        raise OmniError(
            f"--value-model {path} is an adapter without a score head; give a reward model (omni rlhf --algo rm) "
            "or a whole checkpoint"
        )
    else:
        try:
            model = load_model(
                dataclasses.replace(job.options, model=path) if path == job.model_path else ModelOptions(model=path),
                job.registry,
                for_training=True,
                head="sequence_classification",
            ).model
        except OmniError as exc:
            raise OmniError(f"--value-model {path}: {exc}") from None
    if not hasattr(model, "score") or not hasattr(model, model.base_model_prefix):
        raise OmniError(f"--value-model {path}: its {type(model).__name__} has no `score` head over a backbone")
    vocab = model.config.get_text_config().vocab_size
    policy_vocab = job.model.config.get_text_config().vocab_size
    if vocab != policy_vocab:
        raise OmniError(
            f"--value-model {path} has a vocabulary of {vocab} tokens, the policy {policy_vocab}; it reads the "
            "policy's token ids, so it must share its tokenizer"
        )
    log_line(f"ppo: value model from {path}")
    return model.float().train().requires_grad_(True)


def check_ppo(job: TrainingJob, with_media: list[bool]) -> None:
    """What PPO does not run with yet (beside the options `PpoOptions` refuses), refused before training starts."""
    if job.strategy is not None:
        raise OmniError(
            "--algo ppo runs with plain data parallelism for now: its value model is not sharded, so leave out "
            "--deepspeed and --fsdp"
        )
    if any(with_media):
        raise OmniError("--algo ppo takes text prompts only for now: its value model reads no images, audio or video")


class OmniPPOTrainer(OmniGRPOTrainer):
    """OmniGRPOTrainer with PPO's value model, GAE advantages and clipped policy and value losses."""

    def __init__(self, *args: Any, value_model: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_model = value_model.to(self.accelerator.device)
        if self._distributed:  # every process starts from the main one's value model (a fresh head is random)
            for tensor in self.value_model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    @property
    def _distributed(self) -> bool:
        return self.accelerator.num_processes > 1

    def create_optimizer(self, model: Any = None) -> Any:
        """The policy's optimizer with the value model's parameters as one more group (same learning rate and
        schedule). Before each step the value model's gradients are averaged over the processes (data parallelism,
        as DDP does for the policy) and clipped to `--max-grad-norm` on their own."""
        optimizer = super().create_optimizer(model)
        parameters = [p for p in self.value_model.parameters() if p.requires_grad]
        optimizer.add_param_group({"params": parameters, "weight_decay": self.args.weight_decay})

        def prepare_value_gradients(*_: Any) -> None:
            if self._distributed:
                for p in parameters:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.AVG)
            if self.args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(parameters, self.args.max_grad_norm)

        optimizer.register_step_pre_hook(prepare_value_gradients)
        return optimizer

    def _estimate_advantages(self, output: dict[str, Any]) -> dict[str, Any]:
        options: PpoOptions = self.options
        completion_ids = output["completion_ids"]
        input_ids, attention_mask, keep = joined_sequences(output)
        mask = output["completion_mask"].float()
        count = len(completion_ids)
        start = self.accelerator.process_index * count  # TRL's rewards cover the whole batch of every process
        assert self._last_rewards is not None
        scores = torch.nan_to_num(self._last_rewards[start : start + count], nan=0.0).to(mask.device).float()
        if options.missing_eos_penalty is not None:
            ended = ((completion_ids == self.rollout.end_token_id) & mask.bool()).any(dim=1)
            scores = scores - options.missing_eos_penalty * (~ended).float()
        with torch.no_grad():
            if output.get("old_per_token_logps") is None:  # TRL keeps none when each batch is trained once
                output["old_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                    self.model, input_ids, attention_mask, keep
                )
            values = token_values(self.value_model, input_ids, attention_mask, keep)
        old = output["old_per_token_logps"]
        reference = output.get("ref_per_token_logps")
        kl = (old - reference) * mask if reference is not None else torch.zeros_like(old)
        rewards = -options.beta * kl
        last = (mask.sum(dim=1).long() - 1).clamp(min=0)
        rewards[torch.arange(count, device=rewards.device), last] += scores
        if options.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = generalized_advantages(rewards, values, mask, options.gamma, options.lam)
        output["advantages"] = whiten(advantages, mask)
        output["returns"], output["old_values"] = returns, values * mask
        # completions.jsonl and TRL's log show each completion's mean token advantage
        per_sequence = (output["advantages"].sum(1) / mask.sum(1).clamp(min=1.0)).tolist()
        logged = self._logs["advantages"]
        for _ in range(min(count, len(logged))):
            logged.pop()
        logged.extend(per_sequence)
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        metrics["ppo/score"].append(self.accelerator.gather(scores).mean().item())
        metrics["ppo/kl"].append(self.accelerator.gather(kl.sum(1)).mean().item())
        metrics["ppo/value"].append(masked_mean(values, mask).item())
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        mask = inputs["completion_mask"].float()
        input_ids, attention_mask, keep = joined_sequences(inputs)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, input_ids, attention_mask, keep)
        advantages = inputs["advantages"]
        log_ratio = logps - inputs["old_per_token_logps"]
        ratio = torch.exp(log_ratio)
        clipped_ratio = torch.clamp(ratio, 1 - self.epsilon_low, 1 + self.epsilon_high)
        policy_loss = masked_mean(torch.max(-advantages * ratio, -advantages * clipped_ratio), mask)

        options: PpoOptions = self.options
        values = token_values(self.value_model, input_ids, attention_mask, keep)
        old_values, returns = inputs["old_values"], inputs["returns"]
        clipped_values = old_values + torch.clamp(
            values - old_values, -options.cliprange_value, options.cliprange_value
        )
        value_error = torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
        value_loss = 0.5 * masked_mean(value_error, mask)

        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        with torch.no_grad():
            metrics["ppo/policy_loss"].append(policy_loss.item())
            metrics["ppo/value_loss"].append(value_loss.item())
            metrics["ppo/clipfrac"].append(masked_mean((ratio != clipped_ratio).float(), mask).item())
            metrics["ppo/approx_kl"].append(masked_mean(0.5 * log_ratio**2, mask).item())
        loss = policy_loss + options.vf_coef * value_loss
        return loss / (self.current_gradient_accumulation_steps if mode == "train" else 1.0)

    def _check_value_model_agrees(self) -> None:
        """Every process must hold the same value model (they take the same averaged steps); a difference means
        their updates parted, and saving the main process's copy would hide it."""
        if not self._distributed:
            return
        with torch.no_grad():
            checksum = torch.stack([p.double().sum() for p in self.value_model.parameters()]).sum()
        every = self.accelerator.gather(checksum.reshape(1).to(self.accelerator.device))
        if not torch.allclose(every, every[0].expand_as(every), rtol=1e-6, atol=1e-6):
            raise OmniError(f"the value model differs across processes (parameter sums {every.tolist()})")

    def save_value_model(self, directory: str | Path) -> Path:
        """Write the value model (and the tokenizer, so the folder loads as a reward model) atomically into
        `directory`/value_model, from the main process once every process's copy is checked equal; every process
        calls it."""
        self._check_value_model_agrees()
        target = Path(directory) / VALUE_MODEL_DIR
        if self.accelerator.is_main_process:
            with atomic_directory(target, replace=True) as tmp:
                self.value_model.save_pretrained(tmp)
                self.processing_class.save_pretrained(tmp)
        return target

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        self.save_value_model(Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}")
