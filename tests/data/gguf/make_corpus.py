"""Writes the GGUF test files of tests/data/gguf/ (run from anywhere; numpy only).

* tiny_llama.gguf: a valid 1-layer "llama" model (F32 weights, hidden 8, 2 query heads, 1 kv
  head, head_dim 4, ffn 8, vocab 16) for the C++ tests of the reader and the pass.
* all_types.gguf: one small tensor of each dequantizable type (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
  Q5_K, Q6_K) and no model metadata: a fuzz seed that reaches every dequantizer.
* malformed/*.gguf: that file broken in one way each; malformed/expected.txt lists, per file, a
  phrase the refusal message must contain. A fuzz harness can start from these.

The bytes are packed here by hand (struct), not with the gguf package, so that every field can
be made wrong on purpose. Regenerate with: python3 tests/data/gguf/make_corpus.py
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
GGML_F32, GGML_Q5_0 = 0, 6
# ggml type: (elements per block, bytes per block, byte offsets of the float16 scales in a block)
QUANT_BLOCKS = {1: (1, 2, ()), 30: (1, 2, ()), 8: (32, 34, (0,)), 2: (32, 18, (0,)), 3: (32, 20, (0, 2)),
                12: (256, 144, (0, 2)), 13: (256, 176, (0, 2)), 14: (256, 210, (208,))}


def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def value_bytes(vtype: int, value) -> bytes:
    fmt = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B", U64: "<Q",
           I64: "<q", F64: "<d"}
    if vtype == STR:
        return gguf_string(value if isinstance(value, bytes) else value.encode())
    if vtype == ARR:
        etype, items = value
        return struct.pack("<IQ", etype, len(items)) + b"".join(value_bytes(etype, v) for v in items)
    return struct.pack(fmt[vtype], value)


def build(metadata, tensors, *, magic=b"GGUF", version=3, alignment=32, tensor_count=None, kv_count=None,
          offsets=None, pad_data=True) -> bytes:
    """metadata: [(key, type, value)]; tensors: [(name, dims, ggml_type, data_bytes)]."""
    out = bytearray(magic + struct.pack("<I", version))
    out += struct.pack("<QQ", len(tensors) if tensor_count is None else tensor_count,
                       len(metadata) if kv_count is None else kv_count)
    for key, vtype, value in metadata:
        out += gguf_string(key.encode()) + struct.pack("<I", vtype) + value_bytes(vtype, value)
    offset, placed = 0, []
    for i, (name, dims, gtype, data) in enumerate(tensors):
        off = offset if offsets is None or offsets[i] is None else offsets[i]
        out += gguf_string(name.encode()) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gtype, off)
        placed.append((off, data))
        offset = (offset + len(data) + alignment - 1) // alignment * alignment
    start = (len(out) + alignment - 1) // alignment * alignment
    out += b"\0" * (start - len(out))
    data_section = bytearray(max((o + len(d) for o, d in placed), default=0))
    for off, data in placed:
        data_section[off:off + len(data)] = data
    out += data_section
    if pad_data:
        out += b"\0" * ((-len(out)) % alignment)
    return bytes(out)


def tiny_model(seed=3):
    """The metadata and F32 tensors of the 1-layer llama model."""
    rng = np.random.default_rng(seed)
    hidden, hq, hkv, d, ffn, vocab = 8, 2, 1, 4, 8, 16

    def t(name, rows, cols=None):  # a [rows, cols] matrix is stored with dims (cols, rows)
        shape = (rows,) if cols is None else (rows, cols)
        data = (rng.normal(size=shape) / np.sqrt(cols or 1)).astype("<f4")
        if cols is None:
            data = (1 + 0.1 * rng.normal(size=shape)).astype("<f4")
        dims = [rows] if cols is None else [cols, rows]
        return (name, dims, GGML_F32, data.tobytes())

    metadata = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "tiny-llama"),
        ("llama.block_count", U32, 1),
        ("llama.embedding_length", U32, hidden),
        ("llama.feed_forward_length", U32, ffn),
        ("llama.attention.head_count", U32, hq),
        ("llama.attention.head_count_kv", U32, hkv),
        ("llama.rope.freq_base", F32, 100.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("tokenizer.ggml.tokens", ARR, (STR, [f"t{i}" for i in range(vocab)])),
    ]
    tensors = [t("token_embd.weight", vocab, hidden), t("blk.0.attn_norm.weight", hidden),
               t("blk.0.attn_q.weight", hq * d, hidden), t("blk.0.attn_k.weight", hkv * d, hidden),
               t("blk.0.attn_v.weight", hkv * d, hidden), t("blk.0.attn_output.weight", hidden, hq * d),
               t("blk.0.ffn_norm.weight", hidden), t("blk.0.ffn_gate.weight", ffn, hidden),
               t("blk.0.ffn_up.weight", ffn, hidden), t("blk.0.ffn_down.weight", hidden, ffn),
               t("output_norm.weight", hidden)]
    return metadata, tensors


def all_types(seed=5):
    """One 256-element tensor of each dequantizable type: random bytes with small finite scales."""
    rng = np.random.default_rng(seed)
    tensors = []
    for gtype, (block, size, scales) in QUANT_BLOCKS.items():
        if block == 1:  # F16 or BF16: whole values
            values = rng.normal(size=256).astype("<f4")
            data = values.astype("<f2").tobytes() if gtype == 1 else (values.view("<u4") >> 16).astype("<u2").tobytes()
        else:
            blocks = bytearray(rng.integers(0, 256, size=256 // block * size, dtype=np.uint8).tobytes())
            for start in range(0, len(blocks), size):
                for at in scales:
                    blocks[start + at:start + at + 2] = np.array([0.01], dtype="<f2").tobytes()
            data = bytes(blocks)
        tensors.append((f"t{gtype}", [256], gtype, data))
    return build([("general.name", STR, "all-types")], tensors)


def replace_meta(metadata, key, vtype, value):
    return [(k, vtype, value) if k == key else (k, t, v) for k, t, v in metadata]


def replace_tensor(tensors, name, **changes):
    out = []
    for n, dims, gtype, data in tensors:
        if n == name:
            dims, gtype, data = changes.get("dims", dims), changes.get("gtype", gtype), changes.get("data", data)
        out.append((n, dims, gtype, data))
    return out


def corpus():
    """(file name, bytes, phrase the refusal must contain)."""
    meta, tens = tiny_model()
    good = build(meta, tens)
    nan = np.frombuffer(tens[1][3], dtype="<f4").copy()
    nan[3] = np.nan
    q5 = bytes(22 * 1)  # one Q5_0 block holds 32 elements: the output_norm would need 8
    yield "empty.gguf", b"", "not a GGUF file"
    yield "bad_magic.gguf", b"GGML" + good[4:], "magic"
    yield "version_1.gguf", build(meta, tens, version=1), "version 1 is not supported"
    yield "version_4.gguf", build(meta, tens, version=4), "version 4 is not supported"
    yield "big_endian.gguf", good[:4] + struct.pack(">I", 3) + good[8:], "big-endian"
    yield "truncated_header.gguf", good[:300], "truncated file"
    yield "truncated_tensor_infos.gguf", good[:good.index(b"blk.0.ffn_up") + 4], "truncated file"
    yield "truncated_data.gguf", good[:-200], "past the end of the file"
    yield "unknown_value_type.gguf", build(meta + [("x.bad", U32, 0)], tens).replace(
        gguf_string(b"x.bad") + struct.pack("<I", U32), gguf_string(b"x.bad") + struct.pack("<I", 13)), \
        "unknown value type 13"
    yield "unknown_tensor_type.gguf", build(meta, replace_tensor(tens, "blk.0.ffn_norm.weight", gtype=99)), \
        "unknown tensor type 99"
    yield "unsupported_tensor_type.gguf", build(meta, replace_tensor(tens, "blk.0.ffn_norm.weight", gtype=GGML_Q5_0,
                                                                      dims=[32], data=q5)), "Q5_0 is not supported"
    yield "shape_disagrees.gguf", build(meta, replace_tensor(tens, "blk.0.attn_k.weight", dims=[8, 8],
                                                            data=bytes(8 * 8 * 4))), "metadata implies"
    yield "absurd_tensor_count.gguf", build(meta, tens, tensor_count=1 << 60), "tensor count"
    yield "absurd_metadata_count.gguf", build(meta, tens, kv_count=1 << 61), "metadata count"
    yield "absurd_string_length.gguf", good.replace(gguf_string(b"tiny-llama"),
                                                    struct.pack("<Q", 1 << 62) + b"tiny-llama"), "longer than allowed"
    yield "absurd_array_length.gguf", build(replace_meta(meta, "tokenizer.ggml.tokens", ARR, (U64, [])), tens).replace(
        struct.pack("<IQ", U64, 0), struct.pack("<IQ", U64, 1 << 61)), "cannot fit in the file"
    yield "absurd_dims.gguf", build(meta, replace_tensor(tens, "output_norm.weight", dims=[1 << 32, 1 << 32, 1 << 20])), \
        "element count overflows"
    yield "too_many_dims.gguf", build(meta, replace_tensor(tens, "output_norm.weight", dims=[8, 1, 1, 1, 1])), \
        "5 dimensions"
    yield "misaligned_offset.gguf", build(meta, tens, offsets=[None] * 10 + [4]), "not a multiple of the alignment"
    yield "overlapping_tensors.gguf", build(meta, tens, offsets=[None] * 10 + [0]), "overlaps"
    yield "bad_alignment.gguf", build(meta + [("general.alignment", U32, 3)], tens), "power of two"
    yield "duplicate_key.gguf", build(meta + [("llama.block_count", U32, 1)], tens), "duplicate metadata key"
    yield "duplicate_tensor.gguf", build(meta, tens + [tens[-1]]), "duplicate tensor name"
    yield "bad_bool.gguf", build(meta + [("x.flag", BOOL, 2)], tens), "neither 0 nor 1"
    yield "unsupported_architecture.gguf", build(replace_meta(meta, "general.architecture", STR, "gpt2"), tens), \
        'architecture "gpt2" is not supported'
    yield "missing_block_count.gguf", build([m for m in meta if m[0] != "llama.block_count"], tens), \
        "'llama.block_count': is missing"
    yield "heads_do_not_divide.gguf", build(replace_meta(meta, "llama.attention.head_count", U32, 3), tens), \
        "must divide embedding_length"
    yield "missing_tensor.gguf", build(meta, [t for t in tens if t[0] != "blk.0.ffn_down.weight"]), \
        "'blk.0.ffn_down.weight'"
    # Found by the fuzz campaign (an accepted mutant): the name went on to reports and JSON.
    yield "non_utf8_name.gguf", build(replace_meta(meta, "general.name", STR, b"tiny-\xff\xfellama"), tens), \
        'is not valid UTF-8 (byte 0xff at offset 5): "tiny-\\xff\\xfellama"'
    yield "nan_weight.gguf", build(meta, replace_tensor(tens, "blk.0.attn_norm.weight", data=nan.tobytes())), \
        "value 3 is not finite"


def main():
    meta, tens = tiny_model()
    (HERE / "tiny_llama.gguf").write_bytes(build(meta, tens))
    (HERE / "all_types.gguf").write_bytes(all_types())
    bad = HERE / "malformed"
    bad.mkdir(exist_ok=True)
    lines = []
    for name, data, phrase in corpus():
        (bad / name).write_bytes(data)
        lines.append(f"{name}\t{phrase}")
    (bad / "expected.txt").write_text("# file<TAB>phrase the refusal message must contain\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
