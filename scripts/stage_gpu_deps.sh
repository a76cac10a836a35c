#!/usr/bin/env bash
# Copies the header-only libraries the build needs (nlohmann_json, CLI11) into
# build-deps/ so they can travel to the GPU machine, whose image lacks them and has no
# network. Run here before handing the tree to the device tool with carry: ["build-deps"].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/build-deps/usr"
mkdir -p "$DEST/include" "$DEST/share/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI "$DEST/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$DEST/share/cmake/"
echo "staged header-only dependencies in $DEST"
