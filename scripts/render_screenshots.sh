#!/usr/bin/env bash
# Renders KVQ Studio's main window and every chart to PNG, headless, into
# docs/images/ (or $2): opens the dump ($1, default: the bundled sample), trains a
# quick setting (preset "fast", C = 2048, the first four layers) and saves. On a dump
# with queries the attention charts come too, and the codebooks of the same setting
# trained on a synthetic dump (`kvq synth`, same shape) are evaluated on it and drawn
# beside ("from synthetic_cb.h5"): what a domain shift does to attention.
# Usage: scripts/render_screenshots.sh [dump.h5] [out-dir]   (BUILD_DIR=build by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
dump="${1:-$root/resources/samples/smollm2-135m-kv.h5}"
out="${2:-$root/docs/images}"
studio="$build/app/kvq-studio"
kvq="$build/app/kvq"
if [[ ! -x "$studio" || ! -x "$kvq" ]]; then
  echo "kvq-studio or kvq not found in $build/app (configure with -DKVQ_BUILD_UI=ON and build, or set BUILD_DIR)" >&2
  exit 1
fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Codebooks trained on synthetic data of the dump's shape, for the comparison.
info="$("$kvq" info "$dump" --json)"
field() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)" <<<"$info"; }
layers="$(field "','.join(str(l) for l in d['layers_present'][:4])")"
"$kvq" synth --out "$work/synthetic.h5" --layers "$(field "max(d['layers_present'][:4]) + 1")" \
  --kv-heads "$(field "d['num_kv_heads']")" --head-dim "$(field "d['head_dim']")" --tokens 4096 --seed 3 >/dev/null
"$kvq" train "$work/synthetic.h5" --preset fast --codebook-size 2048 --depth 8 --layers "$layers" \
  --out "$work/synthetic_cb.h5" >/dev/null
# The Model impact view with the kvq ppl reports of docs/real-data.md's table (docs/results/).
results="$(ls "$root"/docs/results/*.json 2>/dev/null | paste -sd, -)"
QT_QPA_PLATFORM=offscreen "$studio" --screenshots "$out" --compare "$work/synthetic_cb.h5" \
  ${results:+--model-results "$results"} "$dump"
