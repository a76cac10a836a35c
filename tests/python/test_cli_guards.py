"""CLI refusals and guards on hostile options and files (exit codes and messages).

Each case ran wrongly before its fix: outputs in a missing directory failed only
after training and without naming the option; sweep silently read beam-search
prefixes as depths; INT64_MAX --chunk-tokens / --train-sample overflowed; a
codebook file with ema_decay 1.5 was blamed on "--ema-decay" without the file.
Needs KVQ_BIN (the kvq binary); skipped without it.
"""
import os
import subprocess

import pytest

KVQ_BIN = os.environ.get("KVQ_BIN")
pytestmark = pytest.mark.skipif(not KVQ_BIN, reason="KVQ_BIN is not set")

INT64_MAX = 2**63 - 1
SMALL = ("--preset", "fast", "--codebook-size", 16, "--depth", 2, "--group-size", 8, "--train-sample", 2000,
         "--backend", "cpu", "--baseline-bits", 2, "--baseline-channel-group", 8)


def run(*args):
    return subprocess.run([KVQ_BIN, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    path = tmp_path_factory.mktemp("guards") / "s.h5"
    r = run("synth", "--out", path, "--layers", 1, "--kv-heads", 2, "--head-dim", 16, "--tokens", 256,
            "--seed", 5)
    assert r.returncode == 0, r.stderr
    return path


@pytest.mark.parametrize("option", ["--out", "--npz", "--report", "--csv"])
def test_train_output_in_missing_directory_fails_up_front(dump, option):
    target = "/nonexistent/dir/x.out"
    r = run("train", dump, *SMALL, option, target)
    assert r.returncode == 2, r.stderr
    assert option in r.stderr and target in r.stderr and "does not exist" in r.stderr, r.stderr
    assert "rvq" not in r.stdout  # no results table: nothing was trained


def test_train_output_in_read_only_directory_fails_up_front(dump, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run("train", dump, *SMALL, "--out", ro / "x.h5")
    finally:
        ro.chmod(0o700)
    assert r.returncode == 2 and "--out" in r.stderr and "not writable" in r.stderr, r.stderr


def test_sweep_refuses_beam_search(dump):
    r = run("sweep", dump, *SMALL, "--codebook-sizes", 16, "--depths", "1-2", "--beam", 4)
    assert r.returncode == 2, r.stderr
    assert "--beam" in r.stderr and "greedy" in r.stderr, r.stderr


def csv_rows(path):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def test_int64_max_chunk_and_sample_mean_everything(dump, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    r = run("train", dump, *SMALL, "--csv", a)
    assert r.returncode == 0, r.stderr
    r = run("train", dump, *SMALL, "--csv", b, "--chunk-tokens", INT64_MAX)
    assert r.returncode == 0, r.stderr
    ra, rb = csv_rows(a), csv_rows(b)
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb):
        assert x["vectors"] == y["vectors"]
        assert float(y["relative_error"]) == pytest.approx(float(x["relative_error"]), rel=1e-6)
    # Every training vector (fewer than INT64_MAX): same as a sample larger than the dump.
    big, huge = tmp_path / "big.csv", tmp_path / "huge.csv"
    args = [v if v != 2000 else 10**6 for v in SMALL]
    assert run("train", dump, *args, "--csv", big).returncode == 0
    args = [v if v != 2000 else INT64_MAX for v in SMALL]
    r = run("train", dump, *args, "--csv", huge)
    assert r.returncode == 0, r.stderr
    assert [x["relative_error"] for x in csv_rows(big)] == [x["relative_error"] for x in csv_rows(huge)]


def test_eval_names_codebook_file_and_attribute(dump, tmp_path):
    h5py = pytest.importorskip("h5py")
    cb = tmp_path / "cb.h5"
    r = run("train", dump, *SMALL, "--out", cb)
    assert r.returncode == 0, r.stderr
    with h5py.File(cb, "r+") as f:
        f.attrs["ema_decay"] = 1.5
    r = run("eval", dump, "--codebooks", cb, "--backend", "cpu")
    assert r.returncode == 2, r.stderr
    assert str(cb) in r.stderr and "ema_decay" in r.stderr and "--ema-decay" not in r.stderr, r.stderr
