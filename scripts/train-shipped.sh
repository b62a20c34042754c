#!/usr/bin/env bash
# Trains one of the shipped Fashion-MNIST models and writes everything checkpoints/ ships for
# it: train (resumed when the run folder holds a checkpoint, so the script may be killed and
# rerun any number of times), test once, export, integer eval, parity, plot.
#
#   scripts/train-shipped.sh PRESET EPOCHS [RUN_DIR [TRAIN_FLAG...]]
#
# PRESET is mognet-s, mognet-m or mognet-l; RUN_DIR defaults to runs/PRESET-fmnist; TRAIN_FLAGs
# go to `mognet-train train` after the recipe's own (a recipe chosen on validation, e.g.
# --label-smoothing 0.1; a resumed run keeps its stored config and ignores them, except
# --epochs, --time-budget, --stop-after, --stop-after-steps and --checkpoint-minutes, which
# every session sets for itself). Needs the
# full Fashion-MNIST (datasets/fetch fashion-mnist) and a built workspace (cargo build
# --workspace); MOGNET_TRAIN and MOGNET_INFER override the binaries. Writes
# checkpoints/PRESET-fmnist.{mognet,bpk,config.json,metrics.jsonl,test.json,png}, unless the
# model already shipped there has the higher validation accuracy (exit status 4).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/train-shipped.sh PRESET EPOCHS [RUN_DIR [TRAIN_FLAG...]]" >&2; exit 2; }
preset=$1
epochs=$2
run=${3:-runs/$preset-fmnist}
shift $(( $# < 3 ? $# : 3 ))
extra=("$@")
name=checkpoints/$preset-fmnist
data=datasets/fashion-mnist
train=${MOGNET_TRAIN:-target/debug/mognet-train}
infer=${MOGNET_INFER:-target/debug/mognet-infer}
for bin in "$train" "$infer"; do
  [ -x "$bin" ] || { echo "build first: cargo build --workspace ($bin is missing)" >&2; exit 1; }
done
[ -f "$data/t10k-labels-idx1-ubyte.gz" ] || [ -f "$data/t10k-labels-idx1-ubyte" ] \
  || { echo "fetch the data first: datasets/fetch fashion-mnist" >&2; exit 1; }

resume=()
[ -f "$run/last.json" ] && resume=(--resume)
# The recipe: one-cycle SGD (peak 0.1), batch 128, weight decay 5e-4, crop + flip, 5,000
# training images held out for validation (the best epoch is chosen on them), seed 1.
"$train" train --dataset fashion-mnist --data-dir "$data" --preset "$preset" \
  --epochs "$epochs" --batch-size 128 --backend flex --seed 1 --out "$run" "${resume[@]}" \
  "${extra[@]}"
# A run stopped early (--time-budget, --stop-after among the TRAIN_FLAGs) has no test result
# yet: ship nothing until it has finished.
[ -f "$run/test.json" ] || {
  echo "$run has not finished (no test.json): rerun this script to continue it" >&2; exit 3; }

# A run replaces the shipped model of its preset only if it wins on validation (the same 5,000
# held-out images); the test accuracy never decides. Rerunning on the shipped run re-exports.
valid_of() { sed -n 's/.*"valid_acc": *\([0-9.eE+-]*\).*/\1/p' "$1"; }
if [ -f "$name.test.json" ] && [ -f "$name.bpk" ] && ! cmp -s "$run/best.bpk" "$name.bpk"; then
  shipped=$(valid_of "$name.test.json")
  candidate=$(valid_of "$run/test.json")
  if awk -v c="$candidate" -v s="$shipped" 'BEGIN { exit !(c <= s) }'; then
    echo "$run: best validation accuracy $candidate does not beat the shipped $name's $shipped;" \
      "keeping the shipped files" >&2
    exit 4
  fi
fi

"$infer" export --run "$run" --checkpoint best --out "$name.mognet"
cp "$run/best.bpk" "$name.bpk.tmp" && mv "$name.bpk.tmp" "$name.bpk"
for f in config.json metrics.jsonl test.json; do
  cp "$run/$f" "$name.$f.tmp" && mv "$name.$f.tmp" "$name.$f"
done
"$infer" eval --model "$name.mognet" --dataset fashion-mnist --data-dir "$data"
"$infer" parity --weights "$name.bpk" --model "$name.mognet" --dataset fashion-mnist \
  --data-dir "$data"
"$train" plot --run "$run" --out "$name.png"
sha256sum "$name.mognet" "$name.bpk"
