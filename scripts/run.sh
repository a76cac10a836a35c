#!/usr/bin/env bash
# The main job: set up, build, and start KVQ Studio on the bundled real sample.
# Without a display it runs the command-line equivalent on the same sample instead.
# Either way it first fetches the sample's model (SmolLM2-135M, ~100 MB, once into a per-user
# cache; scripts/fetch_model.sh) for the model-in-the-loop perplexity (`kvq ppl`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
BIN="$ROOT/build/app"
SAMPLE="$ROOT/resources/samples/smollm2-135m-kv.h5"
EVAL="$ROOT/resources/samples/smollm2-135m-eval.h5"
MODEL="$(bash "$ROOT/scripts/fetch_model.sh")" || { echo "run: could not fetch the model; kvq ppl is skipped" >&2; MODEL=""; }

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
# Their reconstruction error on other text: the bundled evaluation dump (same model, layers 0, 12,
# 24 of the Apache-2.0 and MPL-2.0 license texts; resources/samples/README.md), every token measured.
"$BIN/kvq" eval "$EVAL" --codebooks "$ROOT/out/codebooks.h5" --held-out 0
if [ -n "$MODEL" ]; then
  # What the model loses with those codebooks (layers 0, 12, 24) against KIVI at the same layers.
  "$BIN/kvq" ppl "$SAMPLE" --model "$MODEL" --codebooks "$ROOT/out/codebooks.h5" --depths 4,8 --kivi 2,4 \
    --csv > "$ROOT/out/ppl.csv"
  cat "$ROOT/out/ppl.csv"
  echo "Perplexity and KL per variant written to $ROOT/out/ppl.csv"
  # What the model loses with them on that other text (kvq ppl needs only its token ids).
  "$BIN/kvq" ppl "$EVAL" --model "$MODEL" --codebooks "$ROOT/out/codebooks.h5" --depths 4,8 --kivi 2,4 \
    --csv > "$ROOT/out/ppl_other_text.csv"
  cat "$ROOT/out/ppl_other_text.csv"
  echo "On other text: $ROOT/out/ppl_other_text.csv"
fi
