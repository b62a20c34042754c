#!/usr/bin/env bash
# Runs one fuzz target (or all) for a while and appends what it did to fuzz/runs.tsv.
#
#   scripts/fuzz.sh TARGET|all SECONDS [--no-ledger]
#
# Targets: load (the .mognet loader), engines (fast engine against the scalar reference),
# idx, cifar, png (the dataset and picture readers). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Inputs found go to fuzz/work/TARGET (ignored by git);
# the committed seeds in fuzz/corpus/TARGET are read, not written. A crash stops the run with
# its input under fuzz/artifacts/TARGET and this script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
[ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh TARGET|all SECONDS [--no-ledger]" >&2; exit 2; }
targets=$1
seconds=$2
ledger=${3:-}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS must be a whole number above 0, got '$seconds'" >&2; exit 2; }
[ "$targets" = all ] && targets="load engines idx cifar png"
cargo +nightly fuzz --version >/dev/null 2>&1 \
  || { echo "needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (cargo install cargo-fuzz --locked)" >&2; exit 1; }
[ -f runs.tsv ] || printf 'date\ttarget\tseconds\texecutions\tcorpus\tcoverage\tcrashes\tnote\n' > runs.tsv
for target in $targets; do
  [ -f "fuzz_targets/$target.rs" ] || { echo "no fuzz target '$target'" >&2; exit 2; }
  mkdir -p "work/$target" "artifacts/$target"
  log=$(mktemp)
  status=0
  started=$SECONDS
  # The readers are safe Rust, where a sanitizer finds nothing a panic would not; the engines
  # run unsafe SIMD, so they keep AddressSanitizer but skip comparison tracing, which took most
  # of their time and guides nothing: their inputs are structured choices, not parsed bytes.
  # The engines target also runs libFuzzer's plain schedule: the entropic one's rare-feature
  # bookkeeping took a fifth of its time over its 40,000 features (perf, 2026-12-02).
  extra=()
  case $target in
    engines) flags=(--no-trace-compares --target-dir target/asan); extra=(-entropic=0) ;;
    *) flags=(--sanitizer none --target-dir target/plain) ;;
  esac
  # Fake stacks, a long quarantine and filling every allocation cost the engines target most of
  # its speed; heap bounds, what the SIMD kernels could get wrong, are still checked.
  export ASAN_OPTIONS=detect_stack_use_after_return=0:quarantine_size_mb=16:malloc_context_size=0:max_malloc_fill_size=0
  cargo +nightly fuzz run --release "${flags[@]}" "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" "${extra[@]}" >"$log" 2>&1 || status=$?
  # Fuzzing time: libFuzzer's own count when it finished normally, else the wall time
  # less the build (a crash stops it early).
  elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  elapsed=${elapsed:-$(( SECONDS - started ))}
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  corpus=$(ls "work/$target" | wc -l)
  crashes=$([ $status -eq 0 ] && echo 0 || echo 1)
  echo "$target: ${execs:-?} executions in ${elapsed}s, coverage ${cov:-?} edges, corpus $corpus, exit $status"
  if [ "$ledger" != --no-ledger ]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$(date -u +%FT%TZ)" "$target" "$elapsed" \
      "${execs:-0}" "$corpus" "${cov:-0}" "$crashes" >> runs.tsv
    awk -F'\t' -v t="$target" '$2 == t { n += $4; s += $3; c += $7 }
      END { printf "%s: %d executions in %d s over all recorded runs, %d crashes\n", t, n, s, c }' runs.tsv
  fi
  if [ $status -ne 0 ]; then
    tail -40 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done
