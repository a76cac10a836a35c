#!/usr/bin/env bash
# clang-tidy (checks in .clang-tidy) over core/ and app/ sources; any finding fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
mapfile -t FILES < <(cd "$ROOT" && git ls-files -- 'core/src/*.cpp' 'app/cli/*.cpp' 'app/common/*.cpp')
cd "$ROOT"
printf '%s\n' "${FILES[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$BUILD" --quiet --warnings-as-errors='*' 2>/dev/null
