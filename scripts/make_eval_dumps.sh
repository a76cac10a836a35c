#!/usr/bin/env bash
# Makes the 30-layer dumps of docs/real-data.md's "on other text" section (issue 15): codebooks
# are trained on train30.h5 (the sample's texts, with every token's queries, 203 MB) and pooled with
# train30b.h5 (two more texts, with queries, 203 MB; `kvq train train30.h5 --also train30b.h5`), and
# perplexity is measured on eval30.h5 (other text, 80 MB). Texts: Debian base-files'
# /usr/share/common-licenses. About 5 minutes each on a 2-core VM (numpy pass, no GPU).
#
#   scripts/make_eval_dumps.sh [OUT_DIR]      # -> OUT_DIR/train30.h5, train30b.h5, eval30.h5
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-.}"
PYTHON="${PYTHON:-python3}"
MODEL="$(bash "$ROOT/scripts/fetch_model.sh")"
L=/usr/share/common-licenses
dump() {  # dump NAME TEXT1 TEXT2 [EXTRA...]
  local name=$1 a=$2 b=$3
  shift 3
  PYTHONPATH="$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m kvq_dump gguf --gguf "$MODEL" \
    --text "$L/$a" "$L/$b" --out "$OUT/$name.h5" --layers all --seq-len 2048 --max-file-tokens 2048 \
    --dtype float16 --key-rope pre "$@"
}
dump train30 GPL-3 GFDL-1.3 --queries
dump train30b GPL-2 LGPL-2.1 --queries
dump eval30 Apache-2.0 MPL-2.0
