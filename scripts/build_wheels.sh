#!/usr/bin/env bash
# Build a wheel of omni-core and of every plugin distribution into dist/ (or the directory given).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
projects=(./core)
for project in plugins/*/*/pyproject.toml; do
    projects+=("./$(dirname "$project")")
done
python="${PYTHON:-.venv/bin/python}"
"$python" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w "$out" "${projects[@]}"
# setuptools leaves a build/ copy of each package's sources; it is only a by-product.
for project in "${projects[@]}"; do rm -rf "$project/build"; done
ls "$out"/*.whl
