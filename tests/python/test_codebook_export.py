"""Codebook export and codes file, read back by h5py/NumPy.

Runs `kvq synth`, `kvq train --preset fast`, `kvq encode`, then reconstructs every
held-out vector in NumPy from the dump, the codebooks and the codes (scale,
permute, sum of entries, un-permute) and checks the relative error equals the one
the C++ decoder reported. Needs KVQ_BIN (the kvq binary); skipped without it.
"""
import json
import os
import subprocess

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")

KVQ_BIN = os.environ.get("KVQ_BIN")
pytestmark = pytest.mark.skipif(not KVQ_BIN, reason="KVQ_BIN is not set")

C, K, G_SIZE = 64, 3, 16


def run(*args):
    return subprocess.run([KVQ_BIN, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    dump, cb, npz, report, codes = (d / n for n in ("s.h5", "cb.h5", "cb.npz", "r.json", "codes.h5"))
    r = run("synth", "--out", dump, "--layers", 2, "--kv-heads", 2, "--head-dim", 32, "--tokens", 600, "--seed", 3)
    assert r.returncode == 0, r.stderr
    r = run("train", dump, "--preset", "fast", "--codebook-size", C, "--depth", K, "--group-size", G_SIZE,
            "--train-sample", 4000, "--held-out", 0.25, "--backend", "cpu",
            "--out", cb, "--npz", npz, "--report", report)
    assert r.returncode == 0, r.stderr
    r = run("encode", dump, "--codebooks", cb, "--out", codes, "--backend", "cpu")
    assert r.returncode == 0, r.stderr
    return dict(dump=dump, cb=cb, npz=npz, report=json.loads(report.read_text()), codes=codes)


def test_codebook_file_and_npz_agree(trained):
    z = np.load(trained["npz"])
    config = json.loads(str(z["config"][()]))
    assert config["codebook_size"] == C and config["depth"] == K and config["group_size"] == G_SIZE
    with h5py.File(trained["cb"], "r") as f:
        assert f.attrs["kvq_format"] == "rvq-codebooks"
        assert int(f.attrs["kvq_format_version"]) == 1
        assert f.attrs["key_grouping"] == "strided" and f.attrs["value_grouping"] == "contiguous"
        for layer in (0, 1):
            for kind in ("keys", "values"):
                books = f[f"layers/{layer}/{kind}/codebooks"][()]
                order = f[f"layers/{layer}/{kind}/channel_order"][()]
                assert books.shape == (K, C, G_SIZE) and books.dtype == np.float32
                assert sorted(order.tolist()) == list(range(32))
                np.testing.assert_array_equal(books, z[f"L{layer}_{kind}_codebooks"])
                np.testing.assert_array_equal(order, z[f"L{layer}_{kind}_channel_order"])
        # strided keys: group j holds channels j, j+G, ... (G = 2 groups here)
        assert f["layers/0/keys/channel_order"][()][:4].tolist() == [0, 2, 4, 6]


def reconstruct(books, order, codes, scales):
    """codes [T, H, G, K], scales [T, H] -> vectors [T, H, D] in original channel order."""
    T, H, G, depth = codes.shape
    permuted = np.zeros((T, H, G, books.shape[2]), dtype=np.float64)
    for k in range(depth):
        permuted += books[k][codes[..., k].astype(np.int64)]
    permuted = permuted.reshape(T, H, -1) * scales[..., None].astype(np.float64)
    out = np.empty_like(permuted)
    out[..., order] = permuted
    return out


def test_numpy_reconstruction_matches_reported_error(trained):
    report = trained["report"]
    held = report["split"]["held_out"]
    assert report["split"]["held_out_tokens"] == sum(e - b for b, e in held)
    with h5py.File(trained["dump"], "r") as dump, h5py.File(trained["cb"], "r") as cb, \
            h5py.File(trained["codes"], "r") as codes:
        for job in report["jobs"]:
            path = f"layers/{job['layer']}/{job['kind']}"
            x = dump[path][()].astype(np.float64)
            code = codes[path + "/codes"][()]
            assert code.dtype == np.uint16 and code.shape == (x.shape[0], x.shape[1], 32 // G_SIZE, K)
            scales = codes[path + "/scales"][()]
            assert scales.dtype == np.float16
            # the stored scale is the fp16-rounded sample std (ddof = 1)
            std = x.std(axis=2, ddof=1).astype(np.float16)
            np.testing.assert_allclose(scales.astype(np.float64), std.astype(np.float64), rtol=2e-3)
            xr = reconstruct(cb[path + "/codebooks"][()], cb[path + "/channel_order"][()], code, scales)
            rows = np.concatenate([np.arange(b, e) for b, e in held])
            err = ((x[rows] - xr[rows]) ** 2).sum() / (x[rows] ** 2).sum()
            reported = job["error"]["relative_error"]
            assert abs(err - reported) <= 1e-4 * max(1.0, reported), (path, err, reported)
            assert job["by_depth"][-1]["relative_error"] == reported
            # error falls with depth
            curve = [d["relative_error"] for d in job["by_depth"]]
            assert all(a > b for a, b in zip(curve, curve[1:])), curve


def test_per_head_codebooks_reconstruct_in_numpy(trained, tmp_path):
    cb, codes, report = tmp_path / "ph.h5", tmp_path / "phc.h5", tmp_path / "ph.json"
    r = run("train", trained["dump"], "--preset", "fast", "--codebook-size", 16, "--depth", 2, "--group-size", 16,
            "--train-sample", 2000, "--per-head", "--kinds", "values", "--layers", 1, "--backend", "cpu",
            "--out", cb, "--report", report)
    assert r.returncode == 0, r.stderr
    r = run("encode", trained["dump"], "--codebooks", cb, "--out", codes, "--backend", "cpu")
    assert r.returncode == 0, r.stderr
    job = json.loads(report.read_text())["jobs"][0]
    held = json.loads(report.read_text())["split"]["held_out"]
    rows = np.concatenate([np.arange(b, e) for b, e in held])
    with h5py.File(trained["dump"], "r") as d, h5py.File(cb, "r") as f, h5py.File(codes, "r") as c:
        x = d["layers/1/values"][()].astype(np.float64)
        code, scales = c["layers/1/values/codes"][()], c["layers/1/values/scales"][()]
        order = f["layers/1/values/channel_order"][()]
        assert "codebooks" not in f["layers/1/values"]
        xr = np.concatenate([reconstruct(f[f"layers/1/values/head_{h}/codebooks"][()], order,
                                         code[:, h:h + 1], scales[:, h:h + 1]) for h in range(x.shape[1])], axis=1)
    err = ((x[rows] - xr[rows]) ** 2).sum() / (x[rows] ** 2).sum()
    assert abs(err - job["error"]["relative_error"]) <= 1e-4 * max(1.0, err)


def test_eval_of_stored_codebooks_reproduces_the_training_report(trained, tmp_path):
    report = tmp_path / "eval.json"
    r = run("eval", trained["dump"], "--codebooks", trained["cb"], "--backend", "cpu", "--report", report)
    assert r.returncode == 0, r.stderr
    again = json.loads(report.read_text())
    assert again["split"] == trained["report"]["split"]
    for a, b in zip(again["jobs"], trained["report"]["jobs"]):
        assert (a["layer"], a["kind"]) == (b["layer"], b["kind"])
        assert a["by_depth"] == b["by_depth"]
        assert a["baselines"] == b["baselines"]


def test_bad_group_size_exits_2_naming_the_option(trained, tmp_path):
    r = run("train", trained["dump"], "--preset", "fast", "--group-size", 5, "--out", tmp_path / "x.h5")
    assert r.returncode == 2
    assert "--group-size" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_bad_layer_exits_2(trained, tmp_path):
    r = run("train", trained["dump"], "--preset", "fast", "--layers", "7", "--out", tmp_path / "x.h5")
    assert r.returncode == 2 and "--layers" in r.stderr


def test_centred_channels_reconstruct_in_numpy(trained, tmp_path):
    """--center-channels: the stored means are each head's training means, the npz holds them, and
    codes + scales + codebooks + means rebuild the held-out vectors to the reported error."""
    cb, npz, codes, report = (tmp_path / n for n in ("c.h5", "c.npz", "cc.h5", "c.json"))
    r = run("train", trained["dump"], "--preset", "fast", "--codebook-size", 16, "--depth", 2, "--group-size", 16,
            "--train-sample", 2000, "--center-channels", "--layers", 0, "--backend", "cpu",
            "--out", cb, "--npz", npz, "--report", report)
    assert r.returncode == 0, r.stderr
    r = run("encode", trained["dump"], "--codebooks", cb, "--out", codes, "--backend", "cpu")
    assert r.returncode == 0, r.stderr
    rep = json.loads(report.read_text())
    held = rep["split"]["held_out"]
    rows = np.concatenate([np.arange(b, e) for b, e in held])
    train = np.setdiff1d(np.arange(600), rows)
    z = np.load(npz)
    with h5py.File(trained["dump"], "r") as d, h5py.File(cb, "r") as f, h5py.File(codes, "r") as c:
        assert int(f.attrs["center_channels"]) == 1
        for job in rep["jobs"]:
            path = f"layers/0/{job['kind']}"
            x = d[path][()].astype(np.float64)
            means = f[path + "/channel_means"][()]
            assert means.shape == (2, 32) and means.dtype == np.float32
            np.testing.assert_allclose(means, x[train].mean(axis=0), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(means, z[f"L0_{job['kind']}_channel_means"])
            code, scales = c[path + "/codes"][()], c[path + "/scales"][()]
            # the scale is the centred vector's std
            std = (x - means[None]).std(axis=2, ddof=1).astype(np.float16)
            np.testing.assert_allclose(scales.astype(np.float64), std.astype(np.float64), rtol=2e-3)
            xr = reconstruct(f[path + "/codebooks"][()], f[path + "/channel_order"][()], code, scales)
            xr += means[None].astype(np.float64)
            err = ((x[rows] - xr[rows]) ** 2).sum() / (x[rows] ** 2).sum()
            assert abs(err - job["error"]["relative_error"]) <= 1e-4 * max(1.0, err), (path, err)
