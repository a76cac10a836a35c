#!/usr/bin/env bash
# Prepares this checkout for scripts/gpu_check.sh on the GPU machine (run here, once per
# checkout; idempotent). The GPU image has CUDA, CMake, Eigen, HDF5 and PyTorch but
# neither these libraries nor network access:
#   build-deps/usr    nlohmann_json and CLI11 (header-only) with their CMake configs;
#   build-deps/gtest  GoogleTest's static libraries and config, used there only when the
#                     image has no GoogleTest of its own;
#   shared -> the project's shared folder (a link git ignores; ../shared of the main
#                     checkout) when this checkout has no shared/ of its own, so
#                     that the device tool carries the authors' kernel: carry
#                     "shared/peer/vqllm" (it is run from there, never copied into the tree).
# Then: the device tool's run with carry ["build-deps", "shared/peer/vqllm"] (docs/gpu.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/build-deps/usr"
mkdir -p "$DEST/include" "$DEST/share/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI "$DEST/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$DEST/share/cmake/"

GTEST="$ROOT/build-deps/gtest"
LIBDIR=lib/x86_64-linux-gnu
mkdir -p "$GTEST/include" "$GTEST/$LIBDIR/cmake"
cp -r /usr/include/gtest /usr/include/gmock "$GTEST/include/"
cp /usr/$LIBDIR/libgtest.a /usr/$LIBDIR/libgtest_main.a /usr/$LIBDIR/libgmock.a /usr/$LIBDIR/libgmock_main.a \
  "$GTEST/$LIBDIR/"
cp -r /usr/$LIBDIR/cmake/GTest "$GTEST/$LIBDIR/cmake/"

PEER_SHARED=""
for d in "$ROOT/../shared" "$ROOT/../../shared" /work/shared; do
  if [[ -d "$d/peer/vqllm" ]]; then PEER_SHARED="$(cd "$d" && pwd)"; break; fi
done
if [[ ! -e "$ROOT/shared" && -n "$PEER_SHARED" ]]; then
  ln -s "$PEER_SHARED" "$ROOT/shared"
  EXCLUDE="$(git -C "$ROOT" rev-parse --git-path info/exclude)"
  [[ "$EXCLUDE" = /* ]] || EXCLUDE="$ROOT/$EXCLUDE"
  mkdir -p "$(dirname "$EXCLUDE")"
  grep -qx '/shared' "$EXCLUDE" 2>/dev/null || echo '/shared' >>"$EXCLUDE"
fi
echo "staged build-deps/ ($(du -sh "$ROOT/build-deps" | cut -f1)); authors' kernel:" \
  "$(readlink -f "$ROOT/shared/peer/vqllm" 2>/dev/null || echo "not found (no shared/peer/vqllm)")"
