#!/usr/bin/env bash
# `kvq train` on one process against `mpirun -n 2 kvq train` (docs/scaling.md): wall time
# of each and a byte comparison of the codebook files. Measures; never passes or fails
# on time (/usr/bin/time: wall and CPU seconds). Usage: bash bench/mpi_scaling.sh [KVQ_BIN] (default build/app/kvq).
# Environment: LAYERS, TOKENS (the synthetic dump's shape; 8 kv heads x 128 channels as
# Llama-3-8B and -70B), TRAIN (the training options).
set -euo pipefail
KVQ="${1:-build/app/kvq}"
LAYERS="${LAYERS:-4}"
TOKENS="${TOKENS:-8192}"
TRAIN="${TRAIN:---preset fast --codebook-size 256 --depth 4 --group-size 8 --seed 3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Root in containers; no core binding so that each rank's thread may move.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_hwloc_base_binding_policy=none

"$KVQ" synth --out "$WORK/d.h5" --layers "$LAYERS" --kv-heads 8 --head-dim 128 --tokens "$TOKENS" --seed 1 >/dev/null
echo "dump: $LAYERS layers x 8 kv heads x 128 channels x $TOKENS tokens; train: $TRAIN"
echo "| run | wall s | CPU s, all processes | codebooks vs 1 process, 1 thread |"
echo "|---|---|---|---|"
timed() {  # name, out, command...
  local name="$1" out="$2"
  shift 2
  # wall, user, system seconds of the command and all its children (the ranks)
  /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err"
  local wall cpu
  wall=$(cut -d' ' -f1 "$WORK/time")
  cpu=$(awk '{print $2 + $3}' "$WORK/time")
  local same="(reference)"
  if [ -f "$WORK/ref.h5" ] && [ "$out" != "$WORK/ref.h5" ]; then
    same=$(python3 -c "import h5py,numpy as np,sys
a,b=h5py.File(sys.argv[1]),h5py.File(sys.argv[2]); names=[]
a.visititems(lambda n,o: names.append(n) if isinstance(o,h5py.Dataset) else None)
print('bit-identical' if all(np.asarray(a[n][()]).tobytes()==np.asarray(b[n][()]).tobytes() for n in names) else 'DIFFERENT')" "$WORK/ref.h5" "$out")
  fi
  printf '| %s | %.1f | %.1f | %s |\n' "$name" "$wall" "$cpu" "$same"
}
# shellcheck disable=SC2086
timed "1 process, 1 thread" "$WORK/ref.h5" "$KVQ" train "$WORK/d.h5" $TRAIN --backend cpu --threads 1 --out "$WORK/ref.h5"
# shellcheck disable=SC2086
timed "1 process, 2 threads" "$WORK/t2.h5" "$KVQ" train "$WORK/d.h5" $TRAIN --backend cpu --threads 2 --out "$WORK/t2.h5"
# shellcheck disable=SC2086
timed "mpirun -n 2, 1 thread each" "$WORK/r2.h5" mpirun -n 2 "$KVQ" train "$WORK/d.h5" $TRAIN --backend cpu \
  --threads 1 --out "$WORK/r2.h5"
