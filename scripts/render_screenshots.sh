#!/usr/bin/env bash
# Renders KVQ Studio's main window and every chart to PNG, headless, into
# docs/images/ (or $2): opens the dump ($1, default: the bundled sample), trains a
# quick setting (preset "fast", C = 256, the first four layers) and saves.
# Usage: scripts/render_screenshots.sh [dump.h5] [out-dir]   (BUILD_DIR=build by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
dump="${1:-$root/resources/samples/smollm2-135m-kv.h5}"
out="${2:-$root/docs/images}"
studio="$build/app/kvq-studio"
if [[ ! -x "$studio" ]]; then
  echo "kvq-studio not found at $studio (configure with -DKVQ_BUILD_UI=ON and build, or set BUILD_DIR)" >&2
  exit 1
fi
mkdir -p "$out"
QT_QPA_PLATFORM=offscreen "$studio" --screenshots "$out" "$dump"
