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


def run(cmd, ranks=None, check=True, env=None, timeout=600):
    if ranks is not None:
        cmd = [MPIRUN, "-n", str(ranks), "-x", "OMP_NUM_THREADS"] + cmd
    proc = subprocess.run(cmd, env={**mpi_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout)
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
    (2, ("--layers", "1", "--center-channels")),  # the channel means travel with the results
])
def test_ranks_write_the_single_process_codebooks(dump, tmp_path, ranks, extra):
    single = train(dump, tmp_path / "single.h5", extra=extra)
    many = train(dump, tmp_path / f"ranks{ranks}.h5", ranks=ranks, extra=extra)
    assert set(many) == set(single)
    codebooks = [name for name in single if name.endswith("codebooks")]
    assert codebooks, sorted(single)
    for name in single:
        assert many[name] == single[name], f"{name} differs with {ranks} ranks"


@pytest.mark.parametrize("isolation", [[], ["--no-isolation"]])
def test_a_failing_rank_fails_the_run_with_its_message(dump, tmp_path, isolation):
    bad = tmp_path / "nan.h5"
    bad.write_bytes(Path(dump).read_bytes())
    with h5py.File(bad, "r+") as f:
        values = f["layers/2/values"]
        row = values[7]
        row[1, 4] = np.nan
        values[7] = row
    out = tmp_path / "out"
    out.mkdir()
    # 3 ranks, 6 jobs: rank 1 trains layer 2 keys (job 4) and rank 2 layer 2 values (job 5);
    # each rank checks every dataset of the layers it reads, so rank 1, the lowest, names it.
    proc = run([KVQ, "train", str(bad), *TRAIN, *isolation, "--out", str(out / "cb.h5"),
                "--report", str(out / "r.json")], ranks=3, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "/layers/2/values: NaN at token 7, head 1, channel 4 (rank 1 of 3)" in proc.stderr
    assert proc.stderr.count("kvq: error:") == 1, proc.stderr  # printed once, by rank 0
    assert list(out.iterdir()) == []  # no codebook file, no report, no temporary left


def expect_one_refusal(proc, message):
    """Exit 2 on every rank (no rank crashed: mpirun would report the signal), the
    message printed once, by rank 0."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("kvq: error:") == 1, proc.stderr
    assert f"kvq: error: {message}\n" in proc.stderr, proc.stderr
    assert "signal" not in proc.stderr, proc.stderr


def test_a_file_that_crashes_the_library_is_refused_before_any_rank_parses_it(tmp_path):
    # Rank 0's isolated validator meets the crash; no rank opens the file in its own process.
    hostile = Path(__file__).resolve().parents[1] / "data" / "hostile" / "crash_global_heap.h5"
    proc = run([KVQ, "train", str(hostile), *TRAIN, "--out", str(tmp_path / "cb.h5")], ranks=2, check=False,
               timeout=300)
    expect_one_refusal(proc, f"{hostile}: the HDF5 library crashed (SIGSEGV) while reading root attribute "
                             "'model': the file is damaged or hostile (rank 0 of 2)")
    assert list(tmp_path.iterdir()) == []


def test_each_rank_checks_its_layers_in_an_isolated_child(dump, tmp_path):
    # keys only: 3 jobs, rank 0 reads layers 0 and 2, rank 1 layer 1. The validator's
    # test hook crashes whichever process reads /layers/1/values: only rank 1's child
    # does (rank 0 validates the structure alone, reading no data), and the run ends
    # with exit 2 and its message, not a crashed rank.
    proc = run([KVQ, "train", str(dump), *TRAIN, "--kinds", "keys", "--out", str(tmp_path / "cb.h5")],
               ranks=2, check=False, timeout=300,
               env={"KVQ_VALIDATOR_FAULT": "segv@reading /layers/1/values"})
    expect_one_refusal(proc, f"{dump}: the HDF5 library crashed (SIGSEGV) while reading /layers/1/values "
                             "tokens [0, 512): the file is damaged or hostile (rank 1 of 2)")
    assert list(tmp_path.iterdir()) == []


def test_a_hang_in_rank_0s_validator_ends_every_rank(dump, tmp_path):
    proc = run([KVQ, "train", str(dump), *TRAIN, "--out", str(tmp_path / "cb.h5")], ranks=2, check=False,
               timeout=300, env={"KVQ_VALIDATOR_FAULT": "hang@reading root attribute 'num_layers'",
                                 "KVQ_ISOLATION_STALL_S": "3"})
    expect_one_refusal(proc, f"{dump}: the HDF5 library stopped responding (no progress for 3 s, the wall-time "
                             "limit) while reading root attribute 'num_layers': the file is damaged or hostile "
                             "(rank 0 of 2)")


def test_pooled_training_is_refused_under_mpi(dump, tmp_path):
    out = tmp_path / "cb.h5"
    proc = run([KVQ, "train", str(dump), "--also", str(dump), *TRAIN, "--out", str(out)], ranks=2, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("kvq: error:") == 1, proc.stderr
    assert "--also: not supported under MPI" in proc.stderr, proc.stderr
    assert not out.exists()
