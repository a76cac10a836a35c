#!/usr/bin/env bash
# Fuzzes the readers of untrusted files with libFuzzer under ASan + UBSan and sorts
# what it finds (docs/reliability.md, "Fuzzing"):
#   scripts/fuzz.sh [--seconds N] [--timeout S] [--targets "dump codebook gguf"] [--out DIR] [--ci] [--no-build]
# Builds build-fuzz/ with clang-14 (-DKVQ_FUZZ=ON), runs each target for N seconds
# (default 1800) in fork mode — a crash, hang or memory blow-up is saved and the
# campaign goes on —, seeded from tests/data/fuzz/<target> and
# tests/data/malformed/<target> (GGUF: tests/data/gguf, its malformed corpus included),
# then replays every saved input
# (scripts/fuzz_triage.py): ours, or inside libhdf5 (contained by the child-process
# isolation). Writes DIR/report.md (default build-fuzz/run-<date>). --ci: exit 1 if
# anything is ours. --timeout: seconds one input may take before it counts as a
# hang (default 10). --no-build: use the targets already in the build directory
# (KVQ_FUZZ_BUILD_DIR, default build-fuzz). KVQ_NICE=1 runs the fuzzer at nice 19.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET=1800
TIMEOUT=10
TARGETS="dump codebook gguf"
OUT=""
CI=0
BUILD_FIRST=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --no-build) BUILD_FIRST=0; shift ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --ci) CI=1; shift ;;
    *) echo "usage: $0 [--seconds N] [--timeout S] [--targets \"dump codebook gguf\"] [--out DIR] [--ci] [--no-build]" >&2
       exit 2 ;;
  esac
done
BUILD="${KVQ_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
OUT="${OUT:-$BUILD/run-$(date +%Y%m%d-%H%M%S)}"
NICE=()
[[ "${KVQ_NICE:-0}" == 1 ]] && NICE=(nice -n 19)

if [[ "$BUILD_FIRST" == 1 ]]; then
  echo "== fuzz build (clang-14, libFuzzer, ASan + UBSan) in $BUILD"
  LAUNCHER=()
  command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DKVQ_FUZZ=ON -DKVQ_BUILD_UI=OFF -DKVQ_ENABLE_CUDA=OFF -DKVQ_BUILD_TESTS=OFF \
    -DKVQ_BUILD_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
  "${NICE[@]}" cmake --build "$BUILD" -j "${KVQ_JOBS:-$(nproc)}" --target kvq_fuzz
fi

mkdir -p "$OUT/stats"
export KVQ_FUZZ_STATS_DIR="$OUT/stats"
# A huge allocation fails at once with its stack (not after ASan poisoned its shadow).
export ASAN_OPTIONS="detect_leaks=0:symbolize=1:max_allocation_size_mb=1024" UBSAN_OPTIONS="print_stacktrace=1"
seeds() {  # the committed seed directories of a target (read recursively, never written)
  if [[ "$1" == gguf ]]; then echo "$ROOT/tests/data/gguf"; else
    echo "$ROOT/tests/data/fuzz/$1 $ROOT/tests/data/malformed/$1"; fi
}
for target in $TARGETS; do
  echo "== fuzzing the $target reader for ${SECONDS_PER_TARGET}s"
  mkdir -p "$OUT/corpus/$target" "$OUT/artifacts/$target" "$OUT/accepted/$target"
  export KVQ_FUZZ_ACCEPTED_DIR="$OUT/accepted/$target"  # every accepted mutant, for review
  # The first directory collects new inputs; the committed seeds are only read.
  # HDF5 leaks on some refusals inside the library: leaks are left to the ASan unit tests.
  "${NICE[@]}" "$BUILD/tests/fuzz/fuzz_${target}_reader" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -max_len=131072 -detect_leaks=0 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$target/" "$OUT/corpus/$target" $(seeds "$target") \
    >"$OUT/$target.log" 2>&1 || true
  grep -E "^#[0-9]+|INFO: fuzzed for|stat::" "$OUT/$target.log" | tail -3 || true
done

echo "== triage (replaying every saved input)"
TRIAGE=(python3 "$ROOT/scripts/fuzz_triage.py" --build "$BUILD" --out "$OUT" --timeout "$TIMEOUT")
[[ "$CI" == 1 ]] && TRIAGE+=(--fail-on-ours)
"${TRIAGE[@]}"
echo "report: $OUT/report.md"
