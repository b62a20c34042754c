#!/usr/bin/env bash
# Training throughput on an NVIDIA GPU: `mognet-train bench-train` on every GPU backend the
# trainer offers (WGPU, WGPU pinned to Vulkan/SPIR-V, CUDA; all with Burn's fusion and autotune)
# and the PyTorch peer on CUDA (eager and torch.compile), for mognet-s and mognet-m, in one run.
#   scripts/gpu-bench.sh [BATCH] [STEPS]        (defaults: 128, 10)
# On a fresh machine it installs what is missing (Rust's release build of the trainer with the
# `vulkan` and `cuda` features; `pip install torch numpy` for the peer), which needs network
# access (the CUDA backend's build script downloads an LLVM bundle); set MOGNET_TRAIN to a prebuilt binary (built with those features) and have torch
# installed to skip both. Needs an NVIDIA driver (nvidia-smi) and, for the Vulkan rows, the
# NVIDIA Vulkan ICD.
set -uo pipefail
cd "$(dirname "$0")/.."
batch=${1:-128}
steps=${2:-10}
start=$(date +%s)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  || echo "warning: nvidia-smi not found; the CUDA rows will fail" >&2

bin=${MOGNET_TRAIN:-target/release/mognet-train}
if [ ! -x "$bin" ]; then
  echo "# building the trainer (release, --features vulkan,cuda)"
  cargo build --release -p mognet-train --features vulkan,cuda >/dev/null || { echo "build failed" >&2; exit 1; }
fi
if ! python3 -c 'import torch' 2>/dev/null; then
  echo "# installing PyTorch for the peer"
  pip install -q torch numpy || echo "warning: PyTorch could not be installed; no peer rows" >&2
fi

echo "# $(date -u +%Y-%m-%dT%H:%MZ) batch $batch, $steps timed steps (medians), 1 input channel"
for preset in mognet-s mognet-m; do
  echo "## $preset"
  for backend in wgpu vulkan cuda; do
    echo "### mognet-train --backend $backend"
    timeout 240 "$bin" bench-train --backend "$backend" --preset "$preset" --batch "$batch" --steps "$steps" \
      || echo "($backend: failed or timed out)"
  done
  if python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    python3 peers/torch/mognet_peer.py --device cuda --preset "$preset" --batch "$batch" --steps "$steps"
    timeout 240 python3 peers/torch/mognet_peer.py --device cuda --compile --preset "$preset" --batch "$batch" --steps "$steps" \
      || echo "(torch.compile: failed or timed out)"
  else
    echo "(no CUDA device visible to PyTorch: no peer rows)"
  fi
done
echo "# done in $(( $(date +%s) - start )) s"
