#!/usr/bin/env bash
# Inference benchmark, our engine and ONNX Runtime side by side in one run (the machine is noisy:
# compare only numbers from the same run). Needs: a built workspace (cargo build --workspace),
# python3 with onnxruntime and numpy (pip install onnxruntime numpy), and ../shared/bench/.
#   scripts/bench-inference.sh [OUT_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${BENCH_DIR:-../shared/bench}
out=${1:-/dev/stdout}
bin=target/debug/mognet-infer
[ -x "$bin" ] || { echo "build first: cargo build --workspace" >&2; exit 1; }
{
  echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores"
  for preset in mognet-s mognet-m mognet-l; do
    for cfg in "1 1" "64 2"; do
      set -- $cfg
      echo "## $preset batch $1 threads $2"
      $bin bench --preset "$preset" --batch "$1" --threads "$2" --rounds 7 --compare
      if [ "$preset" != mognet-l ]; then
        for g in "$preset-int8.onnx" "$preset.onnx"; do
          python3 "$bench/ort_bench.py" "$bench/$g" "$1" "$2"
        done
      fi
    done
  done
} > "$out" 2>&1
