#!/usr/bin/env bash
# The one script for the GPU machine (no Qt there): builds core + gpu + tests, runs the
# CPU/GPU parity tests (plain and under compute-sanitizer memcheck and racecheck) and
# the GPU benchmark, and writes logs to $OUT (or out/gpu). About five minutes.
# Needs build-deps/ from scripts/stage_gpu_deps.sh (carried along).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${OUT:-$ROOT/out/gpu}"
mkdir -p "$LOG"
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOG/device.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVQ_BUILD_UI=OFF -DKVQ_ENABLE_CUDA=ON \
  -DKVQ_BUILD_BENCH=ON -DKVQ_CUDA_ARCHITECTURES="80;90" -DCMAKE_PREFIX_PATH="$ROOT/build-deps/usr" \
  >"$LOG/configure.txt" 2>&1 || { tail -30 "$LOG/configure.txt"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target kvq_core_tests kvq_gpu_tests bench_gpu_rvq \
  >"$LOG/build.txt" 2>&1 || { grep -E "error|Error" "$LOG/build.txt" | head -40; exit 1; }
echo "== GPU tests"
build-gpu/tests/kvq_gpu_tests 2>&1 | tee "$LOG/gpu_tests.txt" | tail -25
echo "== core tests (same machine)"
build-gpu/tests/kvq_core_tests --gtest_brief=1 2>&1 | tee "$LOG/core_tests.txt" | tail -8
echo "== benchmark"
build-gpu/bench/gpu/bench_gpu_rvq 2>&1 | tee "$LOG/bench.txt"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer $tool"
    compute-sanitizer --tool "$tool" --error-exitcode 3 build-gpu/tests/kvq_gpu_tests \
      --gtest_filter='CudaParity.GreedyEncode*:CudaParity.EntryStatistics*' >"$LOG/sanitizer_$tool.txt" 2>&1
    echo "exit $? ($tool)"; tail -3 "$LOG/sanitizer_$tool.txt"
  done
fi
