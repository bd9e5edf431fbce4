"""omni-plugin-eval: `omni eval`, the built-in benchmarks, and benchmark scores during training.

Only light modules are imported here: implementations are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from omni.api import BenchmarkSpec, CallbackSpec, CommandSpec, Selector, hookimpl

from omni_plugin_eval.options import EvalOptions, TrainEvalOptions

OMNI_PLUGIN_API = "1.1"

_CHOICES = "question, A, B, C, D ... (or a `choices` list), answer (a letter or 0-based index)"


@hookimpl
def register_commands(register):
    register(
        CommandSpec(
            name="eval",
            description="score a model (and its adapters) on benchmarks; answers, summary and a comparison chart",
            impl="omni_plugin_eval.command:run",
            options=EvalOptions,
            selects=(Selector("infer_backend", "engines"),),
        )
    )


@hookimpl
def register_callbacks(register):
    register(
        CallbackSpec(
            name="benchmark-eval",
            description="score benchmarks at each evaluation of a training run, plotted beside the loss",
            impl="omni_plugin_eval.training:BenchmarkEvaluation",
            options=TrainEvalOptions,
            switch="eval_dataset",
        )
    )


@hookimpl
def register_benchmarks(register):
    mc = "omni_plugin_eval.benchmarks.choice"
    register(
        BenchmarkSpec(
            name="mcq",
            description="multiple choice from JSONL/JSON/CSV rows: accuracy of the chosen letter",
            impl=f"{mc}:MultipleChoice",
            layout=f"a .jsonl/.json/.csv file, or a folder of them (one subset per file), with {_CHOICES}; "
            "optional subject column",
        )
    )
    register(
        BenchmarkSpec(
            name="mmlu",
            description="MMLU: 57 subjects of four-option questions, accuracy per subject",
            impl=f"{mc}:Mmlu",
            layout="the MMLU release folder (data/test/SUBJECT_test.csv, or a folder of SUBJECT_test.csv), or one "
            "such CSV: no header, columns question,A,B,C,D,answer",
        )
    )
    register(
        BenchmarkSpec(
            name="ceval",
            description="C-Eval: Chinese four-option questions, accuracy per subject",
            impl=f"{mc}:CEval",
            layout="the C-Eval folder (val/SUBJECT_val.csv), or one such CSV: header id,question,A,B,C,D,answer"
            "[,explanation]",
        )
    )
    register(
        BenchmarkSpec(
            name="arc",
            description="AI2 ARC (Easy/Challenge): science questions with 3-5 labelled options",
            impl=f"{mc}:Arc",
            layout='ARC JSONL files ({"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}), '
            "or a folder of them (ARC-Challenge-Test.jsonl ...: one subset per file)",
        )
    )
    register(
        BenchmarkSpec(
            name="gsm8k",
            description="GSM8K-style math word problems: the final answer checked with math-verify",
            impl="omni_plugin_eval.benchmarks.math:Gsm8k",
            layout='a .jsonl file (or folder of them) of {"question", "answer"} with the final answer after '
            '"####" (GSM8K\'s test.jsonl), or in "solution"',
        )
    )
    register(
        BenchmarkSpec(
            name="qa",
            description="short-answer QA: exact match and token F1 against any of the gold answers (SQuAD rules)",
            impl="omni_plugin_eval.benchmarks.qa:ShortAnswer",
            layout='a .jsonl file (or folder of them) of {"question", "answer" or "answers": [...], optional '
            '"context"}',
            metric="exact_match",
        )
    )
    register(
        BenchmarkSpec(
            name="media-mcq",
            description="image or audio multiple choice for multimodal models: accuracy of the chosen letter",
            impl="omni_plugin_eval.benchmarks.choice:MediaChoice",
            layout=f"a .jsonl file of {_CHOICES}, plus image/images and/or audio/audios (paths relative to the file)",
            modalities=("text", "image", "audio"),
        )
    )
