"""The built-in benchmarks: multiple choice (MMLU, C-Eval, ARC, any JSONL/CSV), math (GSM8K), short-answer QA, and
image/audio multiple choice. Each is a class with `load(path)`, `prompt(row)` and `score(answer, row)`."""
