"""Benchmark scores during `omni sft|pt|rlhf`: the `benchmark-eval` callback plugin (switched on by --eval-dataset).

At each evaluation the model being trained answers the benchmarks' questions (greedy, batched by a pt engine that
shares the model's weights), and the scores are logged as ``eval_BENCHMARK_METRIC`` (logging.jsonl, the trackers,
loss.png beside the loss). With --val-dataset they join the Trainer's own evaluation metrics, so
--metric-for-best-model can name them; without one they are computed every --eval-steps by this callback, which
then keeps the best checkpoint's record itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omni.api import GenerationConfig, OmniError, PtEngine, TrainingCallback, log_line
from transformers import TrainerCallback

from omni_plugin_eval.evaluate import Benchmark, resolve_benchmarks, score, summarize


class BenchmarkEvaluation(TrainingCallback):
    """Scores `--eval-dataset` benchmarks at each evaluation of a training run."""

    benchmarks: list[Benchmark]

    def check(self, options: Any, *, command: str, registry: Any) -> None:
        # The benchmarks are read now: a missing file fails before the model loads.
        self.benchmarks = resolve_benchmarks(
            self.options.eval_dataset, registry, data_dir=self.options.eval_data_dir, limit=self.options.eval_limit
        )
        metric = (options.metric_for_best_model or "").removeprefix("eval_")
        if metric and metric != "loss" and not any(metric.startswith(f"{b.label}_") for b in self.benchmarks):
            names = ", ".join(name.removeprefix("eval_") for name in self.metric_names())
            raise OmniError(f"--metric-for-best-model {metric}: not a metric of this run (loss, {names})")

    def metric_names(self) -> list[str]:
        """The logged names of the benchmarks' headline metrics: ``eval_LABEL_METRIC``."""
        return [f"eval_{b.label}_{b.spec.metric}" for b in self.benchmarks]

    def plotted_metrics(self) -> list[str]:
        return self.metric_names()

    def trainer_callbacks(self, job: Any) -> list[Any]:
        self.scorer = BenchmarkScorer(self, job)
        return [self.scorer]

    def prepare_trainer(self, trainer: Any) -> None:
        self.scorer.trainer = trainer


class BenchmarkScorer(TrainerCallback):
    """The transformers callback: scores at the Trainer's evaluations, or every eval step when it has none."""

    def __init__(self, owner: BenchmarkEvaluation, job: Any) -> None:
        self.owner = owner
        self.job = job
        self.trainer: Any = None
        self.engine: PtEngine | None = None
        self.every = job.options.eval_steps or job.options.save_steps
        self.scored_step = -1

    def evaluate(self, model: Any, step: int) -> dict[str, float]:
        """Every benchmark's metrics for the model as it is now, as ``eval_LABEL_METRIC``."""
        if self.engine is None:
            self.engine = PtEngine.from_model(self.job.model, self.job.tokenizer, self.job.template)
        was_training = model.training
        model.eval()  # no dropout while answering
        try:
            results = score(
                self.engine,
                self.owner.benchmarks,
                {f"step {step}": None},
                GenerationConfig(temperature=0.0),
                max_new_tokens=self.owner.options.eval_max_new_tokens,
                progress=lambda line: None,
            )
        finally:
            model.train(was_training)
        (by_benchmark,) = summarize(results).values()
        metrics = {
            f"eval_{label}_{name}": value
            for label, entry in by_benchmark.items()
            for name, value in entry["metrics"].items()
        }
        self.scored_step = step
        log_line("benchmarks at step {}: {}".format(step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())))
        return metrics

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict | None = None, model: Any = None, **kw: Any
    ) -> None:
        # The Trainer's own evaluation: the scores join its metrics (which --metric-for-best-model reads next).
        if metrics is None or self.scored_step == state.global_step:
            return
        scores = self.evaluate(model, state.global_step)
        metrics.update(scores)
        self.trainer.log(scores)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if args.eval_strategy != "no" or state.global_step % self.every:
            return  # the Trainer evaluates (on_evaluate), or it is not an evaluation step
        pending_log = control.should_log
        self._score_alone(args, state, model)
        control.should_log = pending_log  # logging the scores must not cancel this step's loss log

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if args.eval_strategy == "no" and self.scored_step != state.global_step:
            self._score_alone(args, state, model)  # the final model's scores

    def _score_alone(self, args: Any, state: Any, model: Any) -> None:
        """Score without a Trainer evaluation: log the scores, and track the best one for --metric-for-best-model
        as the Trainer would (its checkpoint is then `best_model_checkpoint` and survives rotation)."""
        scores = self.evaluate(model, state.global_step)
        self.trainer.log(scores)
        name = args.metric_for_best_model
        if not name:
            return
        value = scores.get(name if name.startswith("eval_") else f"eval_{name}")
        if value is None:
            return
        better = np.greater if args.greater_is_better else np.less
        if state.best_metric is None or better(value, state.best_metric):
            state.best_metric = value
            state.best_global_step = state.global_step
