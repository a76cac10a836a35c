"""`mpirun -n N kvq train` against the single-process run (docs/scaling.md).

On a small synthetic dump: 2 ranks sharing 6 layer x kind jobs (each rank alone on
its jobs), 3 ranks on 2 jobs (a group of 2 splitting every search and a rank alone),
each compared byte for byte with `kvq train` without MPI; and a dump with a NaN in
the one dataset a single rank reads, which must fail every rank with that rank's
message, exit 2 and leave no file behind.

Environment (tests/CMakeLists.txt): KVQ_BIN, KVQ_MPIRUN.
"""
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

KVQ = os.environ.get("KVQ_BIN", "kvq")
MPIRUN = os.environ.get("KVQ_MPIRUN", "mpirun")

TRAIN = ["--preset", "fast", "--codebook-size", "64", "--depth", "3", "--group-size", "8",
         "--train-sample", "2000", "--kmeans-iterations", "3", "--ema-steps", "6", "--batch-size", "500",
         "--seed", "5", "--chunk-tokens", "100"]


def mpi_env():
    env = dict(os.environ)
    # Root in CI containers; 3 ranks on a 2-core machine; one OpenMP thread per rank.
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_hwloc_base_binding_policy": "none",
                # containers often forbid the cross-memory attach of the shared-memory transport
                "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
                "OMP_NUM_THREADS": "1"})
    return env


def run(cmd, ranks=None, check=True):
    if ranks is not None:
        cmd = [MPIRUN, "-n", str(ranks), "-x", "OMP_NUM_THREADS"] + cmd
    proc = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "synth.h5"
    run([KVQ, "synth", "--out", str(path), "--layers", "3", "--kv-heads", "2", "--head-dim", "32",
         "--tokens", "512", "--seed", "11"])
    return path


def datasets(path):
    """Every dataset of an HDF5 file: name -> (dtype, shape, bytes)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = np.asarray(obj[()])
                out[name] = (a.dtype.str, a.shape, a.tobytes())
        f.visititems(visit)
    return out


def train(dump, out, ranks=None, extra=()):
    run([KVQ, "train", str(dump), *TRAIN, *extra, "--out", str(out)], ranks=ranks)
    return datasets(out)


@pytest.mark.parametrize("ranks, extra", [
    (2, ()),                                   # 6 jobs: 3 on each rank
    (3, ("--layers", "1")),                    # 2 jobs: ranks 0+2 share one, rank 1 the other
    (3, ("--layers", "0", "--kinds", "values", "--per-head")),  # 1 job, every rank on it
])
def test_ranks_write_the_single_process_codebooks(dump, tmp_path, ranks, extra):
    single = train(dump, tmp_path / "single.h5", extra=extra)
    many = train(dump, tmp_path / f"ranks{ranks}.h5", ranks=ranks, extra=extra)
    assert set(many) == set(single)
    codebooks = [name for name in single if name.endswith("codebooks")]
    assert codebooks, sorted(single)
    for name in single:
        assert many[name] == single[name], f"{name} differs with {ranks} ranks"


def test_a_failing_rank_fails_the_run_with_its_message(dump, tmp_path):
    bad = tmp_path / "nan.h5"
    bad.write_bytes(Path(dump).read_bytes())
    with h5py.File(bad, "r+") as f:
        values = f["layers/2/values"]
        row = values[7]
        row[1, 4] = np.nan
        values[7] = row
    out = tmp_path / "out"
    out.mkdir()
    # 3 ranks, 6 jobs: the job of layer 2 values (index 5) is rank 2's.
    proc = run([KVQ, "train", str(bad), *TRAIN, "--out", str(out / "cb.h5"), "--report", str(out / "r.json")],
               ranks=3, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "/layers/2/values: NaN at token 7, head 1, channel 4 (rank 2 of 3)" in proc.stderr
    assert proc.stderr.count("kvq: error:") == 1, proc.stderr  # printed once, by rank 0
    assert list(out.iterdir()) == []  # no codebook file, no report, no temporary left
