#!/usr/bin/env bash
# One prepared GPU session (a lent CUDA machine whose python3 has torch + triton): the kernel tests
# with compiled Triton kernels on the GPU, then every benchmarks/kernels_*.py timing script
# (each checks its kernel against the PyTorch reference on CUDA and prints a Markdown table).
# Outputs land in $OUT (default /tmp/gpu-out). Run from the repository root.
set -u
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 DNNKIT_HOME=/tmp/dnnkit-home
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/gpu.txt"
timeout 240 python3 -m pytest tests/kernels -p no:cacheprovider -q -rfE 2>&1 | tail -40 | tee "$OUT/kernel_tests.log"
for f in benchmarks/kernels_*.py; do
    echo "## $f"
    timeout 150 python3 "$f"
    echo
done 2>&1 | tee "$OUT/kernels_timing.md"
