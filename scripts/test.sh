#!/usr/bin/env bash
# Sets up and runs every test: format check, warnings-as-errors build (core, CUDA
# compile for sm_80/sm_90 when nvcc exists, GUI), all CTest suites (core, GPU parity
# — skipped without a device —, GUI offscreen, Python file checks, the model pass on
# the sample's real model, fetched once into a per-user cache), an
# ASan+UBSan build of the core tests, a short libFuzzer run of the file readers
# (clang-14), and clang-tidy on the sources.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${KVQ_JOBS:-$(nproc)}"
cd "$ROOT"
bash scripts/setup.sh

echo "== format check (clang-format)"
git ls-files -- '*.h' '*.cpp' '*.cu' '*.cuh' | xargs clang-format --dry-run --Werror

echo "== function length (lizard: no function over 80 lines in core, ui, app, gpu)"
"${PYTHON:-python3}" -m lizard -L 80 -C 1000 -a 100 -w core ui app gpu

echo "== build (Release, warnings are errors)"
KVQ_BUILD_DIR="$ROOT/build" bash scripts/build.sh -DKVQ_WERROR=ON -DKVQ_BUILD_BENCH=ON

echo "== model of the bundled sample (cached per user; the model_fidelity test needs it)"
KVQ_SMOLLM2_GGUF="$(bash scripts/fetch_model.sh)"
export KVQ_SMOLLM2_GGUF KVQ_REQUIRE_MODEL=1

echo "== tests"
export QT_QPA_PLATFORM=offscreen
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS"

echo "== ASan + UBSan build of the core tests"
cmake -S "$ROOT" -B "$ROOT/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVQ_SANITIZE=ON \
  -DKVQ_WERROR=ON -DKVQ_BUILD_UI=OFF -DKVQ_ENABLE_CUDA=OFF >/dev/null
cmake --build "$ROOT/build-asan" -j "$JOBS" --target kvq_core_tests kvq
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS" -L core

echo "== fuzz the file readers (libFuzzer under ASan + UBSan, 45 s per target)"
# Fails only on a fault of ours; faults inside libhdf5 are reported, not failed on
# (the child-process isolation contains them). See docs/reliability.md.
rm -rf "$ROOT/build-fuzz/ci"
KVQ_FUZZ_BUILD_DIR="$ROOT/build-fuzz" bash scripts/fuzz.sh --seconds 45 --timeout 5 --ci --out "$ROOT/build-fuzz/ci"

echo "== clang-tidy"
bash scripts/tidy.sh "$ROOT/build"
echo "== all checks passed"
