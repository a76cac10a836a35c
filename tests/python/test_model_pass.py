"""The C++ model pass (kvq_model_probe, core/src/model/) against the numpy pass of tools/kvq_dump
and the gguf package's dequantizers, on tiny random GGUF files built here: every supported
tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) and both architectures (llama
with its q/k row permutation and a tied head; qwen2 with q/k/v biases and a separate head).
Also: `kvq ppl` refuses the malformed corpus of tests/data/gguf with exit 2, and sparse files whose
few header bytes claim billions of tensors or array values.

Needs numpy, gguf (tools/requirements-sample.txt) and KVQ_MODEL_PROBE / KVQ_BIN (set by ctest).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="needs gguf (tools/requirements-sample.txt)")
SOURCE_DIR = Path(os.environ.get("KVQ_SOURCE_DIR", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "tools"))
from kvq_dump.gguf_llama import GgufLlama  # noqa: E402

import gguf_shape  # noqa: E402  (tests/python is on sys.path, as for test_file_pins.py)

Q = gguf.GGMLQuantizationType
TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# hidden, heads x head_dim and ffn are multiples of 256 so that every matrix row holds whole
# K-quant blocks.
CFG = dict(layers=2, hidden=256, hq=4, hkv=2, d=64, ffn=256, vocab=48, theta=500.0)


def _probe():
    path = os.environ.get("KVQ_MODEL_PROBE")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("KVQ_MODEL_PROBE does not name the kvq_model_probe binary (ctest sets it)")
    return path


def _random_blocks(qtype, rows, cols, rng):
    """Random but well-formed quantized rows: random codes, small positive fp16 scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // block
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    def half(v):
        return np.full((n, 1), v, dtype=np.float16).view(np.uint8)
    scale = np.float16(1.0 / (np.sqrt(cols) * 400))  # codes x 6-bit scales stay near unit size
    if qtype in (Q.Q4_K, Q.Q5_K):  # d, dmin at bytes 0..3; 6-bit scales as random bytes
        raw[:, 0:2] = half(scale)
        raw[:, 2:4] = half(scale * 4)
    elif qtype == Q.Q6_K:  # fp16 d last
        raw[:, -2:] = half(scale)
    return raw.reshape(rows, cols // block * size)


def _tensor(w, name, values, qtype, rng):
    """Adds `values` ([out, in] float32) stored as qtype (K-quants: random blocks instead)."""
    rows, cols = values.shape if values.ndim == 2 else (1, values.shape[0])
    if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        w.add_tensor(name, _random_blocks(qtype, rows, cols, rng), raw_dtype=qtype)
    elif qtype in (Q.F32, Q.F16):
        w.add_tensor(name, values.astype(np.float32 if qtype == Q.F32 else np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)  # byte shape -> logical


def _build(path, arch, qtype, seed=0):
    rng = np.random.default_rng(seed)
    c = CFG
    w = gguf.GGUFWriter(str(path), arch)
    gguf_shape.add_shape(w, f"tiny-{arch}-{qtype.name}", c)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(c["vocab"])

    def mat(rows, cols):
        return (rng.normal(size=(rows, cols)) / np.sqrt(cols)).astype(np.float32)

    _tensor(w, "token_embd.weight", mat(c["vocab"], c["hidden"]) * 4, qtype, rng)
    for layer in range(c["layers"]):
        p = f"blk.{layer}."
        hd, kvd = c["hq"] * c["d"], c["hkv"] * c["d"]
        for name, shape in (("attn_q", (hd, c["hidden"])), ("attn_k", (kvd, c["hidden"])),
                            ("attn_v", (kvd, c["hidden"])), ("attn_output", (c["hidden"], hd)),
                            ("ffn_gate", (c["ffn"], c["hidden"])), ("ffn_up", (c["ffn"], c["hidden"])),
                            ("ffn_down", (c["hidden"], c["ffn"]))):
            _tensor(w, p + name + ".weight", mat(*shape), qtype, rng)
        for name in ("attn_norm", "ffn_norm"):
            w.add_tensor(p + name + ".weight", (1 + 0.1 * rng.normal(size=c["hidden"])).astype(np.float32))
        if arch == "qwen2":
            for name, n in (("attn_q", hd), ("attn_k", kvd), ("attn_v", kvd)):
                w.add_tensor(p + name + ".bias", (0.3 * rng.normal(size=n)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(c["hidden"], dtype=np.float32))
    if arch == "qwen2":
        _tensor(w, "output.weight", mat(c["vocab"], c["hidden"]), qtype, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _load_npy(path):
    return np.load(path)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("qtype", TYPES, ids=[t.name for t in TYPES])
def test_cpp_pass_matches_numpy_pass_on_logits(tmp_path, arch, qtype):
    probe = _probe()
    path = _build(tmp_path / "m.gguf", arch, qtype)
    tokens = [5, 17, 3, 40, 9, 9, 21, 0, 47, 12, 33, 8]
    out = tmp_path / "logits.npy"
    run = subprocess.run([probe, "logits", str(path), str(out), *map(str, tokens)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    ours = _load_npy(out)
    ref = GgufLlama(str(path)).forward(np.array(tokens), want_logits=True).logits
    assert ours.shape == ref.shape == (len(tokens), CFG["vocab"])
    scale = np.abs(ref).max()
    assert scale > 0.5  # the logits are not trivially small
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("qtype", TYPES, ids=[t.name for t in TYPES])
def test_dequantizers_match_the_gguf_package_bit_for_bit(tmp_path, qtype):
    probe = _probe()
    path = _build(tmp_path / "m.gguf", "llama", qtype, seed=1)
    reader = gguf.GGUFReader(str(path))
    for tensor in reader.tensors[:4]:
        out = tmp_path / "t.npy"
        run = subprocess.run([probe, "tensor", str(path), tensor.name, str(out)], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        want = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        np.testing.assert_array_equal(_load_npy(out), want.reshape(_load_npy(out).shape), err_msg=tensor.name)


def test_kvq_ppl_refuses_the_malformed_corpus_with_exit_2():
    kvq = os.environ.get("KVQ_BIN")
    if not kvq:
        pytest.skip("KVQ_BIN is not set (ctest sets it)")
    corpus = SOURCE_DIR / "tests/data/gguf/malformed"
    lines = [ln.split("\t") for ln in (corpus / "expected.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) >= 29
    for name, phrase in lines:
        run = subprocess.run([kvq, "ppl", "--model", str(corpus / name), "--max-tokens", "4"], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 2, (name, run.stderr)
        assert name in run.stderr and phrase in run.stderr, (name, run.stderr)
    run = subprocess.run([kvq, "ppl", "--model", str(SOURCE_DIR / "tests/data/gguf/tiny_llama.gguf"),
                          "--memory-budget", "0.000001"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "memory budget" in run.stderr and "token_embd.weight" in run.stderr, run.stderr


def test_kvq_ppl_refuses_sparse_files_claiming_billions_of_entries(tmp_path):
    """A 4 KB sparse file of 64 GiB once made the reader reserve 176 GB (std::bad_alloc: exit 1)."""
    kvq = os.environ.get("KVQ_BIN")
    if not kvq:
        pytest.skip("KVQ_BIN is not set (ctest sets it)")
    cases = {  # name: (header bytes, phrase)
        "tensors.gguf": (b"GGUF" + struct.pack("<IQQ", 3, 1 << 31, 0), "tensor count 2147483648 is more than 65536"),
        "array.gguf": (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1) + b"x" + struct.pack("<IIQ", 9, 0, 1 << 33),
                       "more than 8388608 values in all"),
    }
    for name, (header, phrase) in cases.items():
        path = tmp_path / name
        path.write_bytes(header)
        os.truncate(path, 64 << 30)
        run = subprocess.run([kvq, "ppl", "--model", str(path), "--max-tokens", "4"], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 2, (name, run.returncode, run.stderr)
        assert name in run.stderr and phrase in run.stderr, (name, run.stderr)


def _gomp_spin_counts(kvq: str, args: list[str], policy: str | None) -> list[str]:
    """GOMP_SPINCOUNT as each libgomp start-up of `kvq ARGS` printed it (OMP_DISPLAY_ENV=verbose)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "verbose"
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    run = subprocess.run([kvq, *args], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    return [line.split("'")[1] for line in (run.stdout + run.stderr).splitlines() if "GOMP_SPINCOUNT" in line]


def test_kvq_ppl_runs_with_passive_openmp_waits():
    """kvq ppl re-executes itself once with OMP_WAIT_POLICY=passive (spin count 0: waiting threads
    sleep); a policy the user set is kept, and other commands keep libgomp's default."""
    kvq = os.environ.get("KVQ_BIN")
    if not kvq:
        pytest.skip("KVQ_BIN is not set (ctest sets it)")
    ppl = _gomp_spin_counts(kvq, ["ppl", "--help"], None)
    assert len(ppl) == 2 and ppl[-1] == "0", ppl  # the first image, then the passive one
    assert _gomp_spin_counts(kvq, ["ppl", "--help"], "active") == ["30000000000"]
    info = _gomp_spin_counts(kvq, ["info", "--help"], None)
    assert len(info) == 1 and info[0] != "0", info
