#!/usr/bin/env bash
# Inference benchmark: our fast engine and its peers on the same model, one after the other in
# one run (the machine is noisy: compare only numbers from the same run). For each preset
# (fresh, folded; 1 input channel, 10 classes; random images) and each batch / threads:
#   - `mognet-infer bench --compare`: the fast engine, the scalar reference, Burn's Flex float
#     eval and tract on the model's float ONNX export, in-process;
#   - ONNX Runtime on the same model's exports, written by `bench --onnx-dir`: `float` (the
#     trained float model), `float-int8` (ONNX Runtime's own static int8 quantization of it,
#     scripts/ort_quantize.py: what an ORT user would deploy) and `qdq` (our int8 QDQ export).
# Prints every tool's output, then a markdown table of medians and ratios.
#
#   scripts/bench-inference.sh [OUT_FILE]
#
# Needs a built workspace (cargo build --workspace) and python3 with onnxruntime, onnx and numpy
# (pip install onnxruntime onnx numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/dev/stdout}
bin=target/debug/mognet-infer
[ -x "$bin" ] || { echo "build first: cargo build --workspace" >&2; exit 1; }
python3 -c 'import onnxruntime, onnx, numpy' 2>/dev/null \
  || { echo "needs python3 with onnxruntime, onnx and numpy (pip install onnxruntime onnx numpy)" >&2; exit 1; }
graphs=$(mktemp -d)
trap 'rm -rf "$graphs"' EXIT
rows=()
# The number before "images/s" or "img/s" on the line of $1 that starts with $2.
rate() { sed -n "s/^$2.* \([0-9.]*\) im\(ages\|g\)\/s.*/\1/p" <<<"$1" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
{
  echo "# $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(uname -m)," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  for preset in mognet-s mognet-m mognet-l; do
    dir=$graphs/$preset
    for cfg in "1 1" "64 2"; do
      set -- $cfg
      echo "## $preset batch $1 threads $2"
      ours=$($bin bench --preset "$preset" --batch "$1" --threads "$2" --rounds 7 --compare \
        --onnx-dir "$dir")
      echo "$ours"
      [ -f "$dir/float-int8.onnx" ] || python3 scripts/ort_quantize.py "$dir/float.onnx" "$dir/float-int8.onnx"
      declare -A ort=()
      for g in float float-int8 qdq; do
        line=$(python3 scripts/ort_bench.py "$dir/$g.onnx" "$1" "$2")
        echo "$line"
        ort[$g]=$(rate "$line" "$g.onnx")
      done
      fast=$(rate "$ours" "fast engine")
      rows+=("| $preset | $1 / $2 | $fast | $(rate "$ours" "scalar reference") | $(rate "$ours" "Burn Flex") | $(rate "$ours" "tract") | ${ort[float]} | ${ort[float-int8]} | ${ort[qdq]} | $(ratio "$fast" "$(rate "$ours" "tract")") | $(ratio "$fast" "${ort[float]}") | $(ratio "$fast" "${ort[float-int8]}") | $(ratio "$fast" "${ort[qdq]}") |")
    done
  done
  echo
  echo "| preset | batch / threads | mognet fast | scalar reference | Burn Flex float | tract float | ORT float | ORT int8 | ORT qdq | fast / tract | fast / ORT float | fast / ORT int8 | fast / ORT qdq |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$out" 2>&1
