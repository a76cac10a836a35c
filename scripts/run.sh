#!/usr/bin/env bash
# The main job: set up, build, and start KVQ Studio on the bundled real sample.
# Without a display it runs the command-line equivalent on the same sample instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
BIN="$ROOT/build/app"
SAMPLE="$ROOT/resources/samples/smollm2-135m-kv.h5"

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -x "$BIN/kvq-studio" ]; then
  exec "$BIN/kvq-studio" "$SAMPLE"
fi

echo "No display: running the command-line equivalent on $SAMPLE"
"$BIN/kvq" info "$SAMPLE"
mkdir -p "$ROOT/out"
# The paper's setting on three layers (a couple of minutes on two cores); drop --layers for all.
"$BIN/kvq" train "$SAMPLE" --preset paper --layers 0,12,24 \
  --out "$ROOT/out/codebooks.h5" --npz "$ROOT/out/codebooks.npz" --report "$ROOT/out/report.json"
echo "Codebooks, npz and report written to $ROOT/out/"
