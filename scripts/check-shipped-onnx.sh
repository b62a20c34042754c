#!/usr/bin/env bash
# Exports every shipped model (checkpoints/*.mognet) in the three ONNX styles and runs each
# graph on the full Fashion-MNIST test set in ONNX Runtime (scripts/check-onnx.py, with
# onnx.checker) and in tract (`mognet-infer check-onnx`), counting the classes that differ from
# the integer engine's. Every graph must run in both; the `exact` graphs must also agree on
# every image (the script fails otherwise); `float` (made only where NAME.bpk is shipped) and
# `qdq` are reported.
#
#   scripts/check-shipped-onnx.sh [OUT_DIR [NAME...]]
#
# NAMEs (such as mognet-m-fmnist) limit the check to those shipped models.
#
# Needs a built workspace (cargo build --workspace; MOGNET_INFER overrides the binary), the full
# Fashion-MNIST (datasets/fetch fashion-mnist) and Python with onnx, onnxruntime and numpy.
# Graphs and logs go to OUT_DIR (default: a new temporary folder); the last lines are a
# markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
infer=${MOGNET_INFER:-target/debug/mognet-infer}
data=datasets/fashion-mnist
out=${1:-$(mktemp -d)}
[ $# -gt 0 ] && shift
models=()
for name in "$@"; do
  [ -f "checkpoints/$name.mognet" ] || { echo "no shipped model checkpoints/$name.mognet" >&2; exit 1; }
  models+=("checkpoints/$name.mognet")
done
[ ${#models[@]} -gt 0 ] || models=(checkpoints/*.mognet)
[ -x "$infer" ] || { echo "build first: cargo build --workspace ($infer is missing)" >&2; exit 1; }
[ -f "$data/t10k-labels-idx1-ubyte.gz" ] || [ -f "$data/t10k-labels-idx1-ubyte" ] \
  || { echo "fetch the data first: datasets/fetch fashion-mnist" >&2; exit 1; }
python3 -c 'import onnx, onnxruntime, numpy' 2>/dev/null \
  || { echo "needs Python with onnx, onnxruntime and numpy (pip install onnx onnxruntime numpy)" >&2; exit 1; }
mkdir -p "$out"

# The number after "differing from the engine:" in a log, or "-" when the line is missing.
differing() { grep -o 'differing from the engine: [0-9]*' "$1" | grep -o '[0-9]*$' || echo -; }
accuracy() { grep -o 'accuracy:\? [0-9.]*' "$1" | head -1 | grep -o '[0-9.]*$' || echo -; }

rows=()
failed=0
for model in "${models[@]}"; do
  name=$(basename "$model" .mognet)
  echo "== $name"
  "$infer" eval --model "$model" --dataset fashion-mnist --data-dir "$data" \
    --classes "$out/$name.classes" | tee "$out/$name.eval.log"
  styles=(exact qdq)
  [ -f "checkpoints/$name.bpk" ] && styles+=(float)
  for style in "${styles[@]}"; do
    graph=$out/$name.$style.onnx
    extra=()
    case $style in
      float) extra=(--weights "checkpoints/$name.bpk") ;;
      qdq) extra=(--calibration-dataset fashion-mnist --calibration-dir "$data") ;;
    esac
    "$infer" export-onnx --model "$model" --out "$graph" --style "$style" "${extra[@]}"
    # check-onnx.py exits 1 when classes differ, which only the exact style must not do; a
    # graph that fails to run is caught below by its missing result line.
    python3 scripts/check-onnx.py "$graph" "$data" "$out/$name.classes" \
      > "$out/$name.$style.ort.log" 2>&1 || true
    "$infer" check-onnx --model "$model" --graph "$graph" --dataset fashion-mnist \
      --data-dir "$data" > "$out/$name.$style.tract.log" 2>&1 || true
    # tract's log is its progress (carriage returns) and then the result line.
    grep -v 'W:onnxruntime' "$out/$name.$style.ort.log" || true
    tail -n 1 "$out/$name.$style.tract.log"
    ort_differ=$(differing "$out/$name.$style.ort.log")
    tract_differ=$(differing "$out/$name.$style.tract.log")
    rows+=("| $name | $style | $(accuracy "$out/$name.eval.log") | $(accuracy "$out/$name.$style.ort.log") | $ort_differ | $(accuracy "$out/$name.$style.tract.log") | $tract_differ |")
    # No result line means the runtime failed to load or run the graph (its log says why):
    # a failure for every style, since every export must at least run.
    if [ "$ort_differ" = - ] || [ "$tract_differ" = - ]; then
      echo "$name: the $style graph did not run (see $out/$name.$style.{ort,tract}.log)" >&2
      failed=1
    elif [ "$style" = exact ] && { [ "$ort_differ" != 0 ] || [ "$tract_differ" != 0 ]; }; then
      echo "$name: the exact graph differs from the engine (ONNX Runtime $ort_differ, tract $tract_differ)" >&2
      failed=1
    fi
  done
done

echo
echo "| model | style | engine acc | ONNX Runtime acc | differ | tract acc | differ |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "graphs and logs: $out"
exit $failed
