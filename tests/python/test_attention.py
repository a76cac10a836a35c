"""Attention metrics of `kvq attention` against a numpy reference, on small dumps written here.

RoPE is applied exactly as each dump says (half and interleaved layouts, /rope_inv_freq overriding
rope_theta, partial rope_dim, post-RoPE dumps untouched); KIVI is re-implemented in numpy with the
same float32/float16 arithmetic as the C++ baseline; every number is then recomputed in float64 from
its definition in docs/metrics.md and compared with the report. Needs KVQ_BIN (ctest sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="h5py is needed (pip install -r tools/requirements-test.txt)")

SOURCE_DIR = Path(os.environ.get("KVQ_SOURCE_DIR", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "tools"))

from kvq_dump import writer as kw  # noqa: E402
from kvq_dump.rope import apply_rope, rope_inverse_frequencies  # noqa: E402

T, HKV, HQ, D, ROPE_DIM, THETA = 96, 2, 4, 16, 12, 500.0
STARTS = [0, 60]
HELD_OUT, WINDOW, TOP_K, NT, NC, BITS = 0.25, 16, 4, 8, 8, 2


def _kvq_bin():
    path = os.environ.get("KVQ_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("KVQ_BIN does not name an executable kvq binary (ctest sets it; or export it by hand)")
    return path


def _activations(seed=3):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(T, HKV, D)).astype(np.float32)
    k[:, :, 1] += 3.0  # a shared direction: uneven, position-dependent attention
    v = rng.normal(size=(T, HKV, D)).astype(np.float32)
    q = rng.normal(size=(T, HQ, D)).astype(np.float32)
    q[:, :, 1] += 2.0
    return k, v, q


def _positions():
    """Rotary position of each token: its offset within its sequence."""
    bounds = STARTS + [T]
    return np.concatenate([np.arange(bounds[i + 1] - bounds[i]) for i in range(len(STARTS))])


def _write(path, k, v, q, key_rope="pre", layout=None, inv_freq=None):
    header = kw.DumpHeader(model="attention test", num_layers=1, num_kv_heads=HKV, head_dim=D, key_rope=key_rope,
                           num_q_heads=HQ, rope_theta=THETA, rope_dim=ROPE_DIM, rope_layout=layout,
                           rope_inv_freq=inv_freq)
    kw.write_dump(str(path), header, {0: {"keys": k, "values": v, "queries": q}}, sequence_starts=STARTS,
                  dtype="float32")


def _run(path, tmp_path):
    report = tmp_path / "attention.json"
    run = subprocess.run([_kvq_bin(), "attention", str(path), "--baseline-bits", str(BITS), "--held-out",
                          str(HELD_OUT), "--baseline-token-group", str(NT), "--baseline-channel-group", str(NC),
                          "--attention-queries", "0", "--attention-window", str(WINDOW), "--attention-top-k",
                          str(TOP_K), "--report", str(report)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(report.read_text())


def _kivi_group(x, bits):
    """x: [n] float32, one group -> dequantized float32, as kvq::quantizeGroupAsymmetric."""
    lo, hi = np.float32(x.min()), np.float32(x.max())
    levels = np.float32(2 ** bits - 1)
    scale = np.float32(np.float16(np.float32(min((np.float64(hi) - np.float64(lo)) / levels, 65504.0))))
    zero = np.float32(np.float16(np.float32(np.clip(np.float64(lo), -65504.0, 65504.0))))
    if scale > 0:
        q = np.clip(np.rint((x - zero) / scale), np.float32(0), levels).astype(np.float32)
    else:
        q = np.zeros_like(x)
    return (q * scale + zero).astype(np.float32)


def _kivi(k, v):
    """KIVI-b keys per channel in groups of NT tokens from each sequence start, values per token."""
    kq, vq = np.empty_like(k), np.empty_like(v)
    bounds = STARTS + [T]
    for s in range(len(STARTS)):
        for t0 in range(bounds[s], bounds[s + 1], NT):
            t1 = min(t0 + NT, bounds[s + 1])
            for h in range(HKV):
                for c in range(D):
                    kq[t0:t1, h, c] = _kivi_group(k[t0:t1, h, c], BITS)
    for t in range(T):
        for h in range(HKV):
            for c0 in range(0, D, NC):
                vq[t, h, c0:c0 + NC] = _kivi_group(v[t, h, c0:c0 + NC], BITS)
    return kq, vq


def _held_out_queries():
    bounds = STARTS + [T]
    out = []
    for s in range(len(STARTS)):
        n = bounds[s + 1] - bounds[s]
        held = int(np.floor(HELD_OUT * n + 0.5))
        out += [(t, bounds[s]) for t in range(bounds[s + 1] - held, bounds[s + 1])]
    return out


def _reference(k, v, q, kq, vq, window):
    """Per query head: the sums of docs/metrics.md in float64. k, kq, q post-RoPE."""
    scale = 1.0 / np.sqrt(D)
    heads = []
    for hq in range(HQ):
        hkv = hq // (HQ // HKV)
        acc = dict(queries=0, out_err=0.0, out=0.0, kl=0.0, logit_err=0.0, logit=0.0, recall=0.0,
                   mass=np.zeros(3), region_kl=np.zeros(3))
        for t, start in _held_out_queries():
            keys = np.arange(start, t + 1)
            m = len(keys)
            qv = q[t, hq].astype(np.float64) * scale
            s = k[keys, hkv].astype(np.float64) @ qv
            st = kq[keys, hkv].astype(np.float64) @ qv
            vt = vq[keys, hkv].astype(np.float64)
            if window:  # KIVI's window: keys quantized WINDOW at a time, values a sliding window
                key_win = np.arange(m) >= m // WINDOW * WINDOW
                value_win = np.arange(m) >= m - WINDOW
                st[key_win] = s[key_win]
                vt[value_win] = v[keys[value_win], hkv]
            p, pt = np.exp(s - s.max()), np.exp(st - st.max())
            p, pt = p / p.sum(), pt / pt.sum()
            o, ot = p @ v[keys, hkv].astype(np.float64), pt @ vt
            region = np.where(np.arange(m) == 0, 0, np.where(np.arange(m) >= max(1, m - WINDOW), 1, 2))
            top = sorted(range(m), key=lambda j: (-st[j], -j))[:TOP_K]
            acc["queries"] += 1
            acc["out_err"] += np.sum((o - ot) ** 2)
            acc["out"] += np.sum(o ** 2)
            kl_terms = p * np.log(p / pt)
            acc["kl"] += kl_terms.sum()
            acc["logit_err"] += np.sum((s - st) ** 2)
            acc["logit"] += np.sum(s ** 2)
            acc["recall"] += p[top].sum()
            for r in range(3):
                acc["mass"][r] += p[region == r].sum()
                acc["region_kl"][r] += kl_terms[region == r].sum()
        heads.append(acc)
    return heads


def _check(method_json, heads):
    for hq, (got, want) in enumerate(zip(method_json["per_head"], heads)):
        n = want["queries"]
        assert got["queries"] == n
        assert got["output_relative_error"] == pytest.approx(want["out_err"] / want["out"], rel=1e-3), hq
        assert got["kl_mean"] == pytest.approx(want["kl"] / n, rel=1e-3, abs=1e-7), hq
        assert got["logit_relative_error"] == pytest.approx(want["logit_err"] / want["logit"], rel=1e-3), hq
        assert got["mass_recall"] == pytest.approx(want["recall"] / n, rel=1e-4), hq
        for r, name in enumerate(("sink", "recent", "rest")):
            assert got["regions"][name]["mass_share"] == pytest.approx(want["mass"][r] / n, rel=1e-4, abs=1e-7)
            assert got["regions"][name]["kl_mean"] == pytest.approx(want["region_kl"][r] / n, rel=1e-3, abs=1e-6)


def _expect_report_matches(doc, k, v, q, k_stored):
    """k, q: post-RoPE; k_stored: the keys as the dump stores them (what KIVI quantizes)."""
    kq, vq = _kivi(k_stored, v)
    layer = doc["layers"][0]
    assert layer["query_tokens"] == len(_held_out_queries())
    methods = {m["method"]: m for m in layer["methods"]}
    assert set(methods) == {"kivi", "kivi-window"}
    return kq, vq, methods


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_pre_rope_layouts_match_numpy(tmp_path, layout):
    k, v, q = _activations()
    path = tmp_path / "pre.h5"
    _write(path, k, v, q, layout=layout)
    doc = _run(path, tmp_path)
    pos = _positions()
    kr = apply_rope(k, pos, THETA, ROPE_DIM, layout=layout)
    qr = apply_rope(q, pos, THETA, ROPE_DIM, layout=layout)
    kq, vq = _kivi(k, v)
    kqr = apply_rope(kq, pos, THETA, ROPE_DIM, layout=layout)  # quantized pre-RoPE keys, then rotated
    methods = {m["method"]: m for m in doc["layers"][0]["methods"]}
    assert doc["layers"][0]["query_tokens"] == len(_held_out_queries())
    _check(methods["kivi"], _reference(kr, v, qr, kqr, vq, window=False))
    _check(methods["kivi-window"], _reference(kr, v, qr, kqr, vq, window=True))
    assert layout in doc["rope"]


def test_rope_inv_freq_overrides_theta(tmp_path):
    k, v, q = _activations(seed=5)
    freq = rope_inverse_frequencies(THETA, ROPE_DIM)
    freq[2:] /= 16.0  # a scaled RoPE: the slow pairs slowed further
    path = tmp_path / "scaled.h5"
    _write(path, k, v, q, inv_freq=freq)
    doc = _run(path, tmp_path)
    pos = _positions()
    kr, qr = apply_rope(k, pos, inv_freq=freq), apply_rope(q, pos, inv_freq=freq)
    kq, vq = _kivi(k, v)
    methods = {m["method"]: m for m in doc["layers"][0]["methods"]}
    _check(methods["kivi"], _reference(kr, v, qr, apply_rope(kq, pos, inv_freq=freq), vq, window=False))
    assert "/rope_inv_freq" in doc["rope"]
    # theta alone would rotate differently: the reference with theta does not match.
    kt, qt = apply_rope(k, pos, THETA, ROPE_DIM), apply_rope(q, pos, THETA, ROPE_DIM)
    wrong = _reference(kt, v, qt, apply_rope(kq, pos, THETA, ROPE_DIM), vq, window=False)
    assert methods["kivi"]["per_head"][0]["kl_mean"] != pytest.approx(wrong[0]["kl"] / wrong[0]["queries"], rel=1e-3)


def test_post_rope_dump_is_not_rotated_again(tmp_path):
    k, v, q = _activations(seed=9)
    pos = _positions()
    kr, qr = apply_rope(k, pos, THETA, ROPE_DIM), apply_rope(q, pos, THETA, ROPE_DIM)
    path = tmp_path / "post.h5"
    _write(path, kr, v, qr, key_rope="post")
    doc = _run(path, tmp_path)
    kq, vq = _kivi(kr, v)  # KIVI quantizes the stored (rotated) keys
    methods = {m["method"]: m for m in doc["layers"][0]["methods"]}
    _check(methods["kivi"], _reference(kr, v, qr, kq, vq, window=False))
    assert doc["rope"].startswith("none")


def test_bits_of_kivi_with_its_window_are_counted_at_the_dumps_length(tmp_path):
    k, v, q = _activations()
    path = tmp_path / "pre.h5"
    _write(path, k, v, q)
    doc = _run(path, tmp_path)
    methods = {m["method"]: m for m in doc["layers"][0]["methods"]}
    b = BITS + 32 / NT  # NT = NC
    assert methods["kivi"]["bits_per_channel"] == pytest.approx(b)
    lengths = np.diff(STARTS + [T])
    keys = sum((n - n % WINDOW) * b + n % WINDOW * 16 for n in lengths) / T  # whole groups of WINDOW quantized
    values = sum((n - min(WINDOW, n)) * b + min(WINDOW, n) * 16 for n in lengths) / T  # the last WINDOW exact
    assert methods["kivi-window"]["bits_per_channel"] == pytest.approx((keys + values) / 2)


# ---- the CLI: --attention on train/eval, kvq attention --codebooks, mismatches ----------------------------------


def _small_dump(path, seed=3, d=D, layer=0):
    k, v, q = _activations(seed)
    header = kw.DumpHeader(model="attention test", num_layers=2, num_kv_heads=HKV, head_dim=d, key_rope="pre",
                           num_q_heads=HQ, rope_theta=THETA, rope_dim=min(ROPE_DIM, d))
    kw.write_dump(str(path), header, {layer: {"keys": k[..., :d], "values": v[..., :d], "queries": q[..., :d]}},
                  sequence_starts=STARTS, dtype="float32")
    return path


TRAIN = ["--preset", "fast", "--codebook-size", "16", "--depth", "2", "--group-size", "8", "--baseline-bits", "2",
         "--baseline-token-group", "8", "--baseline-channel-group", "8"]
ATTN = ["--attention-queries", "0", "--attention-window", "16"]


def test_train_with_attention_adds_json_and_csv_columns(tmp_path):
    dump = _small_dump(tmp_path / "a.h5")
    cb, report, csv = tmp_path / "cb.h5", tmp_path / "r.json", tmp_path / "r.csv"
    run = subprocess.run([_kvq_bin(), "train", str(dump), *TRAIN, "--attention", *ATTN, "--attention-depths", "1,2",
                          "--out", str(cb), "--report", str(report), "--csv", str(csv)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "rvq K=2" in run.stdout and "kivi-2+win" in run.stdout
    doc = json.loads(report.read_text())
    layer = doc["attention"]["layers"][0]
    assert [(m["method"], m.get("depth"), m.get("bits")) for m in layer["methods"]] == [
        ("rvq", 1, None), ("rvq", 2, None), ("kivi", None, 2), ("kivi-window", None, 2)]
    assert layer["methods"][0]["output_relative_error"] > layer["methods"][1]["output_relative_error"] > 0
    assert len(layer["methods"][0]["per_head"]) == HQ
    rows = csv.read_text().splitlines()
    header = rows[0].split(",")
    assert header[:4] == ["layer", "kind", "head", "method"] and "attn_kl" in header and "attn_sink_mass" in header
    cells = [dict(zip(header, r.split(","))) for r in rows[1:]]
    assert all(len(r.split(",")) == len(header) for r in rows)
    attention = [c for c in cells if c["kind"] == "attention"]
    mse = [c for c in cells if c["kind"] != "attention"]
    assert mse and all(c["attn_kl"] == "" for c in mse)
    rvq2 = [c for c in attention if c["method"] == "rvq" and c["depth"] == "2" and c["head"] == "all" and
            c["layer"] == "0"][0]
    assert float(rvq2["attn_kl"]) == pytest.approx(layer["methods"][1]["kl_mean"], rel=1e-6)
    assert int(rvq2["vectors"]) == layer["methods"][1]["queries"]


def test_codebooks_judged_on_another_dump(tmp_path):
    train_dump, other = _small_dump(tmp_path / "a.h5", seed=3), _small_dump(tmp_path / "b.h5", seed=11)
    cb = tmp_path / "cb.h5"
    assert subprocess.run([_kvq_bin(), "train", str(train_dump), *TRAIN, "--out", str(cb)],
                          capture_output=True, text=True, timeout=600).returncode == 0
    report = tmp_path / "x.json"
    run = subprocess.run([_kvq_bin(), "attention", str(other), "--codebooks", str(cb), "--baseline-bits", "2",
                          "--baseline-token-group", "8", "--baseline-channel-group", "8", *ATTN, "--report",
                          str(report)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    doc = json.loads(report.read_text())
    assert doc["kvq_report"] == "attention" and doc["codebooks_file"] == str(cb)
    methods = [m["method"] for m in doc["layers"][0]["methods"]]
    assert methods == ["rvq", "kivi", "kivi-window"]


def test_codebooks_that_do_not_fit_are_refused(tmp_path):
    cb = tmp_path / "cb.h5"
    assert subprocess.run([_kvq_bin(), "train", str(_small_dump(tmp_path / "a.h5")), *TRAIN, "--out", str(cb)],
                          capture_output=True, text=True, timeout=600).returncode == 0
    narrow = _small_dump(tmp_path / "narrow.h5", d=8)
    run = subprocess.run([_kvq_bin(), "attention", str(narrow), "--codebooks", str(cb)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    assert "head_dim: the codebooks were trained for head_dim 16, the dump has 8" in run.stderr
    elsewhere = _small_dump(tmp_path / "layer1.h5", layer=1)
    run = subprocess.run([_kvq_bin(), "attention", str(elsewhere), "--codebooks", str(cb)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    assert "layer 0: the dump" in run.stderr and "does not hold this layer (it holds layers 1)" in run.stderr


def test_attention_on_a_dump_without_queries_is_refused(tmp_path):
    k, v, _ = _activations()
    path = tmp_path / "noq.h5"
    header = kw.DumpHeader(model="m", num_layers=1, num_kv_heads=HKV, head_dim=D, key_rope="pre", rope_theta=THETA)
    kw.write_dump(str(path), header, {0: {"keys": k, "values": v}}, dtype="float32")
    run = subprocess.run([_kvq_bin(), "train", str(path), *TRAIN, "--attention"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "no selected layer stores queries" in run.stderr
