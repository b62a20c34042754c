#!/usr/bin/env bash
# Training-step benchmark: `mognet-train bench-train` (Flex, mognet's own operations and the
# composed reference) and the PyTorch peer (peers/torch/mognet_peer.py, eager and torch.compile)
# one after the other in one run, for mognet-s and mognet-m, then the ratios. The machine is noisy: compare only numbers from one run.
# Needs a built workspace (cargo build -p mognet-train) and python3 with torch and numpy
# (pip install torch numpy).
#   scripts/bench-training.sh [BATCH] [THREADS] [STEPS]
# Defaults: batch 128, 2 threads, 7 timed steps after 2 warm-up steps (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-128}
threads=${2:-2}
steps=${3:-7}
bin=${MOGNET_TRAIN:-target/debug/mognet-train}
[ -x "$bin" ] || { echo "build first: cargo build -p mognet-train" >&2; exit 1; }
python3 -c 'import torch' 2>/dev/null || { echo "the peer needs PyTorch: pip install torch numpy" >&2; exit 1; }
peer=peers/torch/mognet_peer.py
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores; batch $batch, $threads threads, $steps steps"
for preset in mognet-s mognet-m; do
  echo "## $preset"
  for kernels in custom reference; do
    "$bin" bench-train --backend flex --preset "$preset" --batch "$batch" --threads "$threads" \
      --steps "$steps" --kernels "$kernels" | sed "s/^mognet-/[$kernels] mognet-/" | tee -a "$log"
  done
  python3 "$peer" --preset "$preset" --batch "$batch" --threads "$threads" --steps "$steps" | tee -a "$log"
  python3 "$peer" --preset "$preset" --batch "$batch" --threads "$threads" --steps "$steps" --compile | tee -a "$log"
done

echo "## ratios (train images/s; > 1 means the first is faster)"
python3 - "$log" <<'EOF'
import re, sys
rates = {}
for line in open(sys.argv[1]):
    m = re.search(r"(mognet-[sml]) batch \d+: train ([\d.]+) img/s", line)
    if not m:
        continue
    if line.startswith("torch"):
        who = "torch-compile" if " compile " in line else "torch-eager"
    else:
        who = "reference" if line.startswith("[reference]") else "mognet"
    rates[(m.group(1), who)] = float(m.group(2))
for preset in ("mognet-s", "mognet-m"):
    ours = rates.get((preset, "mognet"))
    for peer in ("reference", "torch-eager", "torch-compile"):
        theirs = rates.get((preset, peer))
        if ours and theirs:
            print(f"{preset}: mognet {ours:.1f} / {peer} {theirs:.1f} img/s = {ours / theirs:.2f}x")
EOF
