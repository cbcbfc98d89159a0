#!/usr/bin/env bash
# Regenerate requirements.txt from requirements.in, and requirements-torch-cpu.txt from the lock, the way the
# committed ones were made (uv 0.13.9: pip install uv; needs network). uv resolves against PyPI plus one file:
# torch's CPU wheel for Linux x86_64 / Python 3.11, which pip downloads from PyTorch's CPU index into a temporary
# folder, so the lock names exactly that wheel's hash and no CUDA package.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' requirements.in)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
pip download --quiet --no-deps --only-binary :all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
    --index-url https://download.pytorch.org/whl/cpu --dest "$wheels" "torch==$torch_version+cpu"
uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --find-links "$wheels" --custom-compile-command scripts/lock.sh --output-file requirements.txt requirements.in
# requirements-torch-cpu.txt: its comments and index line as they are, then torch's pin and hash from the lock.
{
    grep -E '^(#|--)' requirements-torch-cpu.txt
    sed -n '/^torch==/,/^    # via/p' requirements.txt | sed '$d'
} > "$wheels/torch-cpu.txt"
mv "$wheels/torch-cpu.txt" requirements-torch-cpu.txt
