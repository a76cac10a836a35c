#!/usr/bin/env bash
# The one script for the GPU machine (docs/gpu.md: how to run it with the device tool).
#
#   1. build core + gpu + tests + bench + kvq without Qt, for the device's architecture;
#   2. the CPU/GPU parity tests (kvq_gpu_tests);
#   3. compute-sanitizer memcheck and racecheck on the small parity cases (encode kernels
#      incl. the exact fallback, statistics and EMA kernels);
#   4. the benchmark (reference shape) and, in the same run, the paper authors' Triton
#      kernel (../shared/peer/vqllm or shared/peer/vqllm), with the ratios;
#   4b. the model pass of `kvq ppl` (reference pass over the sample's 4096 tokens, random weights
#      of SmolLM2-135M's shapes: the GGUF cannot be fetched there) with its weight products on
#      OpenBLAS (all cores) and on cuBLAS (bench_model_pass --synthetic --cuda); the cuBLAS
#      logits against the CPU's are CublasModelPass.* in step 2;
#   5. end to end: `kvq synth` one layer of the 32-layer x 8-head x 128-dim, 32 768-token
#      model, then `kvq train --preset paper` on it with --backend cuda and cpu (the held-out
#      metrics must be identical: the backends are bit-equal).
# Options: --full-model   also synthesise and train all 32 layers (cuda; minutes)
#          --full-model-only   only that (reuses an earlier build when present)
#          --skip-build   reuse build-gpu/
# Writes $OUT/summary.txt and a few logs (build, tests, sanitizer, bench, e2e) to $OUT
# (default out/gpu). Exits non-zero when any step fails. About 5 minutes on an H100/H200.
# Needs build-deps/ from scripts/stage_gpu_deps.sh (carried along).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${OUT:-$ROOT/out/gpu}"
BUILD="$ROOT/build-gpu"
WORK="${TMPDIR:-/tmp}/kvq_gpu_check"
FULL=0
FULL_ONLY=0
SKIP_BUILD=0
for arg in "$@"; do
  case "$arg" in
    --full-model) FULL=1 ;;
    --full-model-only) FULL=1 FULL_ONLY=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    *) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUTDIR" "$WORK"
SUMMARY="$OUTDIR/summary.txt"
: >"$SUMMARY"
FAILED=()

say() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME TIMEOUT_S LOG CMD...: runs CMD under a timeout, appends to LOG, records the result.
step() {
  local name="$1" limit="$2" log="$3"
  shift 3
  local t0=$SECONDS
  echo "== $name" | tee -a "$log"
  # bash -c: CMD may be one of the functions below (exported), which timeout cannot run.
  timeout --kill-after=10 "$limit" bash -o pipefail -c '"$@"' "$name" "$@" >>"$log" 2>&1
  local rc=$?
  local verdict=PASS
  [[ $rc -eq 0 ]] || verdict="FAIL (exit $rc$([[ $rc -eq 124 ]] && echo ", timed out after ${limit}s"))"
  say "[$verdict] $name ($((SECONDS - t0)) s)"
  [[ $rc -eq 0 ]] || FAILED+=("$name")
  return $rc
}

# ---- tools -------------------------------------------------------------------------------
for dir in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
  [[ -x "$dir/nvcc" ]] && ! command -v nvcc >/dev/null && export PATH="$PATH:$dir"
done
NVCC="$(command -v nvcc || true)"
CUDA_ROOT="$(dirname "$(dirname "$(readlink -f "${NVCC:-/usr/local/cuda/bin/nvcc}")")")"
SANITIZER=""
for c in "$(command -v compute-sanitizer || true)" "$CUDA_ROOT/bin/compute-sanitizer" \
  "$CUDA_ROOT/compute-sanitizer/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
  /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
  if [[ -n "$c" && -x "$c" ]]; then SANITIZER="$c"; break; fi
done
PEER=""
for p in "$ROOT/../shared/peer/vqllm" "$ROOT/shared/peer/vqllm" "$ROOT/../../shared/peer/vqllm"; do
  if [[ -f "$p/bench_authors_kernel.py" ]]; then PEER="$(cd "$p" && pwd)"; break; fi
done
CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
ARCH="${KVQ_CUDA_ARCH:-${CAP:-90}}"
{
  echo "KVQ Studio GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 |
    sed 's/^/device: /' || echo "device: nvidia-smi failed"
  echo "nvcc: ${NVCC:-missing} ($("${NVCC:-false}" --version 2>/dev/null | tail -1)); arch sm_$ARCH"
  echo "cmake: $(cmake --version 2>/dev/null | head -1); ninja: $(ninja --version 2>/dev/null || echo missing)"
  echo "compute-sanitizer: ${SANITIZER:-not found}; authors' kernel: ${PEER:-not found}"
} | tee -a "$SUMMARY"

# ---- 1. build ----------------------------------------------------------------------------
configure() {
  local gen=(-G Ninja)
  command -v ninja >/dev/null || gen=(-G "Unix Makefiles")
  local args=(-S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DKVQ_BUILD_UI=OFF
    -DKVQ_ENABLE_CUDA=ON -DKVQ_BUILD_BENCH=ON -DKVQ_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_POLICY_VERSION_MINIMUM=3.5)
  [[ -n "$NVCC" ]] && args+=(-DCMAKE_CUDA_COMPILER="$NVCC")
  # The image's GoogleTest first; the staged copy (build-deps/gtest) only if it has none.
  cmake "${args[@]}" -DCMAKE_PREFIX_PATH="$ROOT/build-deps/usr" && return 0
  rm -rf "$BUILD"
  cmake "${args[@]}" -DCMAKE_PREFIX_PATH="$ROOT/build-deps/usr;$ROOT/build-deps/gtest"
}
build() {
  configure || return 1
  cmake --build "$BUILD" -j "$(nproc)" --target kvq bench_gpu_rvq kvq_gpu_tests bench_model_pass
}
export ROOT OUTDIR BUILD WORK SUMMARY NVCC ARCH
export -f configure build
if [[ $SKIP_BUILD -eq 0 && ! ($FULL_ONLY -eq 1 && -x "$BUILD/app/kvq") ]]; then
  step "build (core, gpu, tests, bench, kvq; no Qt; sm_$ARCH)" 330 "$OUTDIR/build.log" build
fi
KVQ="$BUILD/app/kvq"

# ---- 2-4. tests, sanitizers, benchmark ---------------------------------------------------
sanitize() {
  local tool="$1" log="$WORK/sanitizer_$1.txt"
  "$SANITIZER" --tool "$tool" --error-exitcode 3 "$BUILD/tests/kvq_gpu_tests" --gtest_filter='CudaSanitize.*' \
    >"$log" 2>&1
  local rc=$?
  cat "$log"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Device not supported|FAILED|PASSED" "$log" | tail -4 | sed "s/^/  $tool: /" \
    >>"$SUMMARY"
  return $rc
}
authors() {
  (cd "$PEER" && PYTHONUNBUFFERED=1 python3 bench_authors_kernel.py) | tee "$WORK/authors.txt"
}
export SANITIZER PEER
export -f sanitize authors
if [[ $FULL_ONLY -eq 0 ]]; then
  if step "GPU parity tests (kvq_gpu_tests)" 200 "$OUTDIR/tests.log" "$BUILD/tests/kvq_gpu_tests"; then :; fi
  # gtest's closing lines: counts, and the name of every failed test.
  sed -n '/test suites\? ran/,$p' "$OUTDIR/tests.log" | grep -v '^\[  SKIPPED \] [A-Za-z]' | sed 's/^/  /' >>"$SUMMARY"
  if [[ -n "$SANITIZER" ]]; then
    step "compute-sanitizer memcheck (CudaSanitize.*)" 150 "$OUTDIR/sanitizer.log" sanitize memcheck
    step "compute-sanitizer racecheck (CudaSanitize.*)" 150 "$OUTDIR/sanitizer.log" sanitize racecheck
  else
    say "[FAIL] compute-sanitizer not found (PATH, $CUDA_ROOT, /usr/local/cuda)"
    FAILED+=("compute-sanitizer")
  fi
  step "benchmark (bench_gpu_rvq, reference shape)" 150 "$OUTDIR/bench.log" "$BUILD/bench/gpu/bench_gpu_rvq"
  if [[ -n "$PEER" ]]; then
    step "authors' Triton kernel (bench_authors_kernel.py)" 200 "$OUTDIR/bench.log" authors
  else
    say "[FAIL] authors' kernel not found: carry shared/peer/vqllm (docs/gpu.md)"
    FAILED+=("authors' kernel")
  fi
  python3 - "$OUTDIR/bench.log" "$WORK/authors.txt" >>"$SUMMARY" 2>&1 <<'EOF'
import json, sys
ours = theirs = None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("BENCH_JSON "):
        ours = json.loads(line[len("BENCH_JSON "):])
try:
    for line in open(sys.argv[2], errors="replace"):
        if line.strip().startswith("{"):
            theirs = json.loads(line)
except OSError:
    pass
if ours is None:
    print("  benchmark: no BENCH_JSON line")
    sys.exit(0)
tf = lambda ms: ours["gflop"] / ms if ms else float("nan")
print(f"  device {ours['device']}: N={ours['vectors']} C={ours['C']} K={ours['K']} g={ours['g']}, {ours['gflop']} GFLOP")
print(f"  {'':34} {'ours ms':>9} {'TFLOP/s':>8} {'authors ms':>11} {'TFLOP/s':>8} {'speed-up':>8}")
rows = [("encode (tensor cores)", ours["encode_ms"], "encode_ms"),
        ("encode + residual (tensor cores)", ours["encode_residual_ms"], "encode_ms"),
        ("encode --exact", ours["encode_exact_ms"], "encode_ms"),
        ("EMA training step (tensor cores)", ours["ema_step_ms"], "ema_step_ms"),
        ("EMA training step --exact", ours["ema_step_exact_ms"], "ema_step_ms")]
for name, ms, key in rows:
    a = theirs.get(key) if theirs else None
    extra = f"{a:11.3f} {ours['gflop'] / a:8.1f} {a / ms:8.2f}x" if a else f"{'-':>11} {'-':>8} {'-':>8}"
    print(f"  {name:34} {ms:9.3f} {tf(ms):8.1f} {extra}")
print(f"  decisions left to the exact search: {100 * ours['fallback_share']:.4f} %")
print(f"  cuBLAS SGEMM {ours['sgemm_ms']:.3f} ms, TF32 GEMM {ours['tf32_gemm_ms']:.3f} ms (same dot products, no argmin)")
print(f"  Backend::encodeGreedy with host arrays: {ours['backend_encode_ms']:.1f} ms")
if theirs:
    print(f"  authors' device: {theirs.get('device')}")
EOF
  step "model pass (bench_model_pass --synthetic --cuda)" 240 "$OUTDIR/bench_model.log" \
    "$BUILD/bench/bench_model_pass" --synthetic --no-eigen-pass --cuda
  python3 - "$OUTDIR/bench_model.log" >>"$SUMMARY" 2>&1 <<'EOF'
import json, sys
r = None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("BENCH_MODEL_JSON "):
        r = json.loads(line[len("BENCH_MODEL_JSON "):])
if r is None or r["cublas_s"] <= 0:
    print("  model pass: no BENCH_MODEL_JSON line with a cuBLAS time")
else:
    print(f"  model pass, 4094 predictions (random SmolLM2-135M shapes): OpenBLAS on {r['threads']} threads "
          f"{r['openblas_s']:.2f} s, cuBLAS weight products {r['cublas_s']:.2f} s "
          f"({r['openblas_s'] / r['cublas_s']:.2f}x; attention stays on the CPU)")
EOF
fi

# ---- 5. end to end -----------------------------------------------------------------------
# `kvq train --report` for backend $2 on dump $1; the wall time goes to $WORK/e2e_$2.seconds.
train() {
  local dump="$1" backend="$2" layers="$3" t0 t1
  t0=$(date +%s%N)
  "$KVQ" train "$dump" --preset paper --layers "$layers" --backend "$backend" --report "$WORK/e2e_$backend.json" || return 1
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e9 }' >"$WORK/e2e_$backend.seconds"
}
same_metrics() {
  python3 - "$WORK/e2e_cuda.json" "$WORK/e2e_cpu.json" <<'EOF'
import json, sys
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if not any(w in k for w in ("second", "timing", "backend", "path"))}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
print("held-out metrics and codebook statistics: " + ("identical" if a == b else "DIFFERENT"))
sys.exit(0 if a == b else 1)
EOF
}
one_layer() {
  local dump="$WORK/synth_1layer.h5"
  "$KVQ" synth --out "$dump" --layers 1 --kv-heads 8 --head-dim 128 --tokens 32768 --seed 1 || return 1
  train "$dump" cuda 0 && train "$dump" cpu 0 || return 1
  echo "one layer (8 heads x 128 x 32768 tokens, keys + values), paper preset: cuda $(cat "$WORK/e2e_cuda.seconds") s, cpu $(cat "$WORK/e2e_cpu.seconds") s ($(nproc) cores)" |
    tee -a "$SUMMARY"
  same_metrics | tee -a "$SUMMARY"
}
whole_model() {
  local dump="$WORK/synth_32layers.h5"
  "$KVQ" synth --out "$dump" --layers 32 --kv-heads 8 --head-dim 128 --tokens 32768 --seed 1 || return 1
  train "$dump" cuda 0-31 || return 1
  echo "whole model (32 layers), paper preset, cuda: $(cat "$WORK/e2e_cuda.seconds") s" | tee -a "$SUMMARY"
}
export ROOT OUTDIR BUILD WORK SUMMARY NVCC ARCH SANITIZER PEER KVQ
export -f configure build sanitize authors train same_metrics one_layer whole_model
if [[ -x "$KVQ" ]]; then
  [[ $FULL_ONLY -eq 0 ]] && step "end to end, one layer (kvq synth + kvq train --preset paper)" 240 "$OUTDIR/e2e.log" one_layer
  [[ $FULL -eq 1 ]] && step "end to end, whole 32-layer model (cuda)" 560 "$OUTDIR/e2e.log" whole_model
else
  say "[FAIL] end to end: $KVQ was not built"
  FAILED+=("end to end")
fi

if [[ ${#FAILED[@]} -gt 0 ]]; then
  say "FAILED: ${FAILED[*]}"
  exit 1
fi
say "all steps passed"
