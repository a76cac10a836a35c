"""kvq train DUMP --also DUMP2: training on several dumps at once.

Pooling two dumps trains exactly what one dump holding the tokens of both trains (its
sequences the two dumps', so the held-out tails are the same): bit-identical codebooks,
channel orders and query-aware key weights for the same seed. Dumps that disagree in shape
are refused with exit 2 naming both files and the field; every --also dump goes through
the same isolated open as DUMP. Needs KVQ_BIN (the kvq binary); skipped without it.
"""
import os
import subprocess

import h5py
import numpy as np
import pytest

KVQ_BIN = os.environ.get("KVQ_BIN")
pytestmark = pytest.mark.skipif(not KVQ_BIN, reason="KVQ_BIN is not set")

H, D, HQ = 2, 16, 4
# --train-sample 600: 300 of each quantizer's token-head vectors are drawn (selection sampling
# runs across both dumps); --held-out 0.25 of each sequence.
SMALL = ("--preset", "fast", "--codebook-size", 16, "--depth", 3, "--group-size", 8, "--train-sample", 600,
         "--ema-steps", 5, "--batch-size", 128, "--backend", "cpu", "--baseline-bits", "",
         "--held-out", 0.25, "--seed", 7)


def run(*args):
    return subprocess.run([KVQ_BIN, *map(str, args)], capture_output=True, text=True, timeout=600)


def write_dump(path, parts, **attrs):
    """A dump whose sequences are `parts` (each {layer: (keys, values, queries)}, arrays [T, *, D])."""
    header = dict(kvq_format="kv-dump", kvq_format_version=1, model="toy", num_layers=2, num_kv_heads=H,
                  head_dim=D, num_q_heads=HQ, key_rope="pre", rope_theta=10000.0)
    header.update(attrs)
    with h5py.File(path, "w") as f:
        for k, v in header.items():
            f.attrs[k] = v
        for layer in parts[0]:
            for i, name in enumerate(("keys", "values", "queries")):
                data = np.concatenate([p[layer][i] for p in parts])
                f.create_dataset(f"layers/{layer}/{name}", data=data.astype(np.float32))
        starts = np.cumsum([0] + [len(next(iter(p.values()))[0]) for p in parts[:-1]])
        f.create_dataset("sequence_starts", data=starts.astype(np.int64))


def tokens(rng, t, shift, layers=(0, 1), d=D):
    """Keys, values and queries of `t` tokens per layer; `shift` moves the distribution."""
    return {layer: (rng.normal(shift, 1.0, (t, H, d)), rng.normal(-shift, 2.0, (t, H, d)),
                    rng.normal(0.0, 1.0 + shift, (t, HQ, d))) for layer in layers}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(3)
    a, b = tokens(rng, 300, 0.0), tokens(rng, 200, 1.5)
    paths = {name: folder / f"{name}.h5" for name in ("a", "b", "ab")}
    write_dump(paths["a"], [a])
    write_dump(paths["b"], [b])
    write_dump(paths["ab"], [a, b])
    return paths


def layer_datasets(path):
    """Every dataset under /layers of a codebook file, by path."""
    out = {}
    with h5py.File(path, "r") as f:
        f["layers"].visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                               else None)
    return out


@pytest.mark.parametrize("flags", [(), ("--query-aware",), ("--center-channels",)])
def test_pooling_two_dumps_equals_one_dump_of_both(dumps, tmp_path, flags):
    pooled, joined, alone = tmp_path / "pooled.h5", tmp_path / "joined.h5", tmp_path / "alone.h5"
    r = run("train", dumps["a"], "--also", dumps["b"], *SMALL, *flags, "--out", pooled)
    assert r.returncode == 0, r.stderr
    assert f"also     trained on {dumps['b']}" in r.stdout, r.stdout
    assert run("train", dumps["ab"], *SMALL, *flags, "--out", joined).returncode == 0
    assert run("train", dumps["a"], *SMALL, *flags, "--out", alone).returncode == 0
    p, j, a = layer_datasets(pooled), layer_datasets(joined), layer_datasets(alone)
    assert p.keys() == j.keys() and any(k.endswith("codebooks") for k in p)
    if "--query-aware" in flags:
        assert any(k.endswith("channel_weights") for k in p)
    if "--center-channels" in flags:  # the means of both dumps' training tokens, as of one dump of both
        assert any(k.endswith("channel_means") for k in p)
    for name in p:
        np.testing.assert_array_equal(p[name], j[name], err_msg=name)
    # Not vacuous: the first dump alone trains other codebooks.
    assert any(not np.array_equal(p[k], a[k]) for k in p if k.endswith("codebooks"))
    with h5py.File(pooled, "r") as f:
        assert f.attrs["source_dump"] == str(dumps["a"])
        assert f.attrs["also_trained_on"] == str(dumps["b"])
    with h5py.File(alone, "r") as f:
        assert "also_trained_on" not in f.attrs
    r = run("attention", dumps["a"], "--codebooks", pooled, "--baseline-channel-group", 16)
    assert r.returncode == 0, r.stderr
    assert f"trained on {dumps['a']})\n          and on {dumps['b']}\n" in r.stdout, r.stdout


@pytest.mark.parametrize("field,attrs,d", [
    ("head_dim", {"head_dim": 32}, 32),
    ("rope_theta", {"rope_theta": 500000.0}, D),
    ("num_layers", {"num_layers": 3}, D),
])
def test_dumps_that_disagree_are_refused(dumps, tmp_path, field, attrs, d):
    other = tmp_path / "other.h5"
    write_dump(other, [tokens(np.random.default_rng(1), 64, 0.0, d=d)], **attrs)
    r = run("train", dumps["a"], "--also", other, *SMALL, "--out", tmp_path / "cb.h5")
    assert r.returncode == 2, r.stderr
    assert field in r.stderr and str(other) in r.stderr and str(dumps["a"]) in r.stderr, r.stderr
    assert not (tmp_path / "cb.h5").exists()


def test_a_missing_layer_is_refused(dumps, tmp_path):
    other = tmp_path / "layer0.h5"
    write_dump(other, [tokens(np.random.default_rng(1), 64, 0.0, layers=(0,))])
    r = run("train", dumps["a"], "--also", other, *SMALL)
    assert r.returncode == 2 and "layer 1" in r.stderr and str(other) in r.stderr, r.stderr
    # Training only the layers both hold works.
    assert run("train", dumps["a"], "--also", other, *SMALL, "--layers", 0).returncode == 0


def test_query_aware_needs_queries_in_every_dump(dumps, tmp_path):
    other = tmp_path / "noq.h5"
    write_dump(other, [tokens(np.random.default_rng(1), 64, 0.0)])
    with h5py.File(other, "a") as f:
        for layer in f["layers"]:
            del f[f"layers/{layer}/queries"]
        del f.attrs["num_q_heads"]
    r = run("train", dumps["a"], "--also", other, *SMALL, "--query-aware")
    assert r.returncode == 2 and "queries" in r.stderr and str(other) in r.stderr, r.stderr


def test_an_also_dump_goes_through_the_isolated_open(dumps, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)
    r = run("train", dumps["a"], "--also", junk, *SMALL)
    assert r.returncode == 2 and str(junk) in r.stderr, r.stderr
    r = run("train", dumps["a"], "--also", tmp_path / "missing.h5", *SMALL)
    assert r.returncode == 2 and "missing.h5" in r.stderr, r.stderr
