#!/usr/bin/env bash
# Installs everything KVQ Studio needs to build, run and test on Debian 12.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev libhdf5-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  qt6-base-dev qt6-charts-dev qt6-svg-dev libqt6svg6 libqt6opengl6-dev libgl-dev
  libfaiss-dev libopenblas-dev liblapack-dev
  openmpi-bin libopenmpi-dev
  clang-format clang-tidy
  clang-14 libclang-rt-14-dev libomp-14-dev
  python3 python3-pip python3-venv
  xvfb xauth
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages for the file checks (numpy/h5py read what kvq writes) and pytest.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import numpy, h5py, pytest, gguf, tokenizers, lizard" >/dev/null 2>&1; then
  echo "setup: installing Python packages from tools/requirements-test.txt"
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/tools/requirements-test.txt" ||
    "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$ROOT/tools/requirements-test.txt"
fi
