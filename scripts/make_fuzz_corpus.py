#!/usr/bin/env python3
"""Writes the committed hostile-file corpus of docs/reliability.md (needs numpy and h5py).

  tests/data/fuzz/dump/, tests/data/fuzz/codebook/   valid seeds of the fuzz targets: small dumps and
                                                     codebook files in every layout the readers accept
  tests/data/malformed/{dump,codebook}/              structure-aware hostile files, one per policy the
                                                     readers enforce, also fuzz seeds
  tests/data/malformed/manifest.tsv                  reader, file, the refusal expected after "<file>: "
                                                     (tests/core/test_dump_malformed.cpp checks each)

Files found by fuzzing are added to tests/data/malformed/ by hand, with their line in the manifest;
this script leaves files it does not write alone. Usage: python3 scripts/make_fuzz_corpus.py [ROOT]
"""
from __future__ import annotations

import functools
import os
import sys
import zlib

import h5py
import numpy as np

T, H, D = 16, 2, 8
LIBVER = ("earliest", "v110")  # readable by HDF5 1.10, as the project's readers are built against
SHAPE = (T, H, D)


def values(seed: int, dtype=np.float32) -> np.ndarray:
    return np.sin(0.1 * np.arange(T * H * D) + seed).reshape(SHAPE).astype(dtype)


# ---- dumps -----------------------------------------------------------------------------------------

def dump_header(f: h5py.File, **extra) -> None:
    a = f.attrs
    a["kvq_format"] = "kv-dump"
    a["kvq_format_version"] = 1
    a["model"] = "fuzz seed"
    a["num_layers"] = 2
    a["num_kv_heads"] = H
    a["head_dim"] = D
    a["key_rope"] = "pre"
    for key, value in extra.items():
        a[key] = value


def write_dump(path: str, dtype: str = "float16", gzip: bool = True, fletcher32: bool = True, queries=False,
               tokens=True, starts=True, chunk_tokens: int = 8, libver=LIBVER, query_positions=None,
               inv_freq=None, **extra) -> h5py.File:
    """A valid dump (T=16, H=2, D=8, layers 0 and 1); returns it open for further damage.

    query_positions: store queries only for these tokens (/query_positions); inv_freq: /rope_inv_freq."""
    f = h5py.File(path, "w", libver=libver)
    dump_header(f, **extra)
    if queries:
        f.attrs["num_q_heads"] = H
    store = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}[dtype]
    kw = dict(chunks=(chunk_tokens, H, D), fletcher32=fletcher32)
    if gzip:
        kw.update(compression="gzip", compression_opts=4, shuffle=True)
    for layer in (0, 1):
        for i, kind in enumerate(("keys", "values", "queries") if queries else ("keys", "values")):
            data = values(layer * 3 + i)
            if kind == "queries" and query_positions is not None:
                data = data[list(query_positions)]
            if dtype == "bfloat16":
                data = (data.view(np.uint32) >> 16).astype(np.uint16)
            chunked = dict(kw, chunks=(min(chunk_tokens, data.shape[0]), H, D))
            ds = f.create_dataset(f"layers/{layer}/{kind}", data=data.astype(store), **chunked)
            if dtype == "bfloat16":
                ds.attrs["dtype"] = "bfloat16"
    vector_kw = dict(chunks=True, fletcher32=True) if fletcher32 else {}
    if tokens:
        f.create_dataset("tokens", data=np.arange(T, dtype=np.int32), **vector_kw)
    if starts:
        f.create_dataset("sequence_starts", data=np.array([0, 9], dtype=np.int64), **vector_kw)
    if query_positions is not None:
        f.create_dataset("query_positions", data=np.array(query_positions, dtype=np.int64), **vector_kw)
    if inv_freq is not None:
        f.create_dataset("rope_inv_freq", data=np.array(inv_freq, dtype=np.float64), **vector_kw)
    return f


def chunk_offset(path: str, dataset: str, coord) -> int:
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_chunk_info_by_coord(coord).byte_offset


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


def replace_keys(f: h5py.File, create) -> None:
    """Replaces /layers/0/keys by what `create(group, name)` makes."""
    del f["layers/0/keys"]
    create(f["layers/0"], "keys")


def direct_chunk(payload: bytes, compression=None, fletcher32=False):
    def create(group, name):
        kw = dict(shape=SHAPE, dtype="f4", chunks=SHAPE)
        if compression:
            kw.update(compression=compression)
        ds = group.create_dataset(name, fletcher32=fletcher32, **kw)
        ds.id.write_direct_chunk((0, 0, 0), payload)
    return create


def low_level_dataset(filters):
    """A [T, H, D] float32 dataset whose pipeline is `filters` applied in order to the dcpl."""
    def create(group, name):
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)  # the same bytes every run
        dcpl.set_chunk(SHAPE)
        for apply in filters:
            apply(dcpl)
        space = h5py.h5s.create_simple(SHAPE)
        ds = h5py.h5d.create(group.id, name.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, values(0))
    return create


KEYS = "/layers/0/keys"
NOT_WRITTEN = "declared [{0}] but its data was never written"


def damaged(write, change, **kw):
    """build(path) for a case: a valid file written by write(path, **kw), then change(file) on it open."""
    def build(path):
        f = write(path, **kw)
        change(f)
        f.close()
    return build


def dump_cases(out: str):
    """(name, build(path), expected message after "<path>: ") for each dump policy."""
    damage = functools.partial(damaged, write_dump)

    def keys(create):  # float32 like every replacement of /layers/0/keys below
        return damage(lambda f: replace_keys(f, create), dtype="float32")

    def external(f):
        raw = os.path.join(os.path.dirname(f.filename), "external-raw.bin")
        values(0).tofile(raw)
        replace_keys(f, lambda g, n: g.create_dataset(n, shape=SHAPE, dtype="f4",
                                                       external=[("external-raw.bin", 0, T * H * D * 4)]))

    def virtual(f):
        layout = h5py.VirtualLayout(shape=SHAPE, dtype="f4")
        layout[:] = h5py.VirtualSource(".", "/layers/1/keys", shape=SHAPE)
        replace_keys(f, lambda g, n: g.create_virtual_dataset(n, layout))

    def soft_layers(f):
        f.move("layers", "stash")
        f["layers"] = h5py.SoftLink("/stash")

    def external_layers(f):
        f.move("layers", "stash")
        f["layers"] = h5py.ExternalLink("elsewhere.h5", "/layers")

    def soft_tokens(f):
        f.move("tokens", "stash")
        f["tokens"] = h5py.SoftLink("/stash")

    def attr(name, value, dtype=None):
        def change(f):
            if dtype is None:
                f.attrs[name] = value
            else:
                f.attrs.create(name, value, dtype=dtype)
        return change

    def unwritten(name, dtype, length):
        def change(f):
            del f[name]
            f.create_dataset(name, shape=(length,), dtype=dtype)
        return change

    nominal = T * H * D * 4
    zero_bomb = zlib.compress(b"\0" * (64 << 10))
    fletcher_then_deflate = [lambda p: p.set_fletcher32(), lambda p: p.set_deflate(4)]
    yield ("external_storage", damage(external, dtype="float32"),
           f"{KEYS}: keeps its data in external raw files; refused, as that would read files the user "
           "never named")
    yield ("virtual_dataset", damage(virtual, dtype="float32"),
           f"{KEYS}: is a virtual dataset (its data lives in other files); refused, the file must hold its "
           "own data")
    link = "is a soft or external link (the file's objects must be stored in the file itself)"
    yield ("soft_link_layers", damage(soft_layers), f"/layers: {link}")
    yield ("external_link_layers", damage(external_layers), f"/layers: {link}")
    yield ("soft_link_tokens", damage(soft_tokens), f"/tokens: {link}")
    chunk = "the chunk at [0, 0, 0] (tokens [0, 16))"
    yield ("short_chunk", keys(direct_chunk(b"\0" * 100)),
           f"{KEYS}: {chunk} is stored in 100 bytes, but its nominal size is {nominal} bytes (a short or long "
           "chunk)")
    yield ("long_chunk", keys(direct_chunk(b"\0" * (nominal + 8))),
           f"{KEYS}: {chunk} is stored in {nominal + 8} bytes, but its nominal size is {nominal} bytes (a short or "
           "long chunk)")
    big = zlib.compress(np.random.default_rng(1).bytes(4 * nominal), 0)
    yield ("oversized_compressed_chunk", keys(direct_chunk(big, "gzip")),
           f"{KEYS}: {chunk} is stored in {len(big)} bytes, which cannot hold a compressed chunk of {nominal} "
           f"bytes (at most {nominal + 13})")
    yield ("gzip_bomb", keys(direct_chunk(zero_bomb, "gzip")),
           f"{KEYS}: {chunk} decodes to more than its nominal {nominal} bytes")
    yield ("gzip_short", keys(direct_chunk(zlib.compress(b"\0" * 100), "gzip")),
           f"{KEYS}: {chunk} decodes to 100 bytes, short of its nominal {nominal} bytes")
    yield ("gzip_garbage", keys(direct_chunk(b"\x78\x9c" + b"\xff" * 40, "gzip")),
           f"{KEYS}: {chunk} is not a valid deflate stream (zlib: invalid block type)")
    yield ("filter_scaleoffset",
           keys(low_level_dataset([lambda p: p.set_scaleoffset(h5py.h5z.SO_FLOAT_DSCALE, 2)])),
           f'{KEYS}: uses filter 6 ("scaleoffset"); only shuffle, deflate (gzip) and fletcher32 are accepted')
    yield ("filter_order", keys(low_level_dataset(fletcher_then_deflate)),
           f"{KEYS}: lists its filters in an unusual order or twice (accepted: shuffle, deflate, fletcher32, in "
           "that order)")
    yield ("string_with_nul", damage(attr("kvq_format", np.bytes_(b"kv-dump\0junk"))),
           "/: attribute 'kvq_format' holds a NUL byte at offset 7: \"kv-dump\\x00junk\"")
    yield ("model_not_utf8_fixed", damage(attr("model", np.bytes_(b"Llama\xff\xfe"))),
           "/: attribute 'model' is not valid UTF-8 (byte 0xff at offset 5): \"Llama\\xff\\xfe\"")
    yield ("model_not_utf8_vlen", damage(attr("model", b"caf\xe9", h5py.string_dtype("utf-8"))),
           "/: attribute 'model' is not valid UTF-8 (byte 0xe9 at offset 3): \"caf\\xe9\"")
    yield ("model_overlong_utf8", damage(attr("model", b"\xc0\xaf", h5py.string_dtype("utf-8"))),
           "/: attribute 'model' is not valid UTF-8 (byte 0xc0 at offset 0): \"\\xc0\\xaf\"")
    yield ("source_too_long", damage(attr("source", "s" * 70000)),
           "/: attribute 'source' is 70000 bytes long, over the limit of 65536 bytes")
    yield ("tokens_never_written", damage(unwritten("tokens", "i4", T)), f"/tokens: {NOT_WRITTEN.format(T)}")
    yield ("sequence_starts_never_written", damage(unwritten("sequence_starts", "i8", 2)),
           f"/sequence_starts: {NOT_WRITTEN.format(2)}")
    yield ("rope_theta_denormal", damage(attr("rope_theta", 5e-324)),
           "/: attribute 'rope_theta' must be a positive normal number (found 4.94066e-324)")

    def flipped(gzip, dataset, chunk, byte):
        """build(path): a valid dump (gzip or not) with one byte of dataset's chunk flipped."""
        def build(path):
            write_dump(path, gzip=gzip).close()
            flip_byte(path, chunk_offset(path, dataset, chunk) + byte)
        return build

    def mismatch(dataset, token):
        return (f"/{dataset}: checksum mismatch (Fletcher-32) in the chunk at [{token}, 0, 0] "
                f"(tokens [{token}, {token + 8})): the file is damaged")
    yield ("checksum_mismatch", flipped(False, "layers/1/values", (8, 0, 0), 17), mismatch("layers/1/values", 8))
    yield ("checksum_mismatch_gzip", flipped(True, "layers/0/keys", (0, 0, 0), 11), mismatch("layers/0/keys", 0))


def valid_dumps():
    for dtype in ("float16", "bfloat16", "float32"):
        for gzip in (True, False):
            yield f"{dtype}_{'gzip' if gzip else 'plain'}", dict(dtype=dtype, gzip=gzip)
    yield "no_checksums_old_file", dict(fletcher32=False)
    yield "queries_rope", dict(queries=True, rope_theta=10000.0, rope_dim=D)
    yield "attention_fields", dict(queries=True, query_positions=[0, 5, 9, 15], rope_theta=500000.0, rope_dim=D,
                                   rope_layout="interleaved", attention_scale=0.25,
                                   inv_freq=[1.0, 0.1, 0.01, 0.001])
    yield "bare", dict(tokens=False, starts=False, chunk_tokens=16)


# ---- codebook files -------------------------------------------------------------------------------

C, K, G = 4, 2, 4  # entries, stages, group size; head_dim D = 8


def write_codebooks(path: str, per_head: bool = False, layer_name: str = "0", fletcher32: bool = True) -> h5py.File:
    f = h5py.File(path, "w", libver=LIBVER)
    ints = dict(codebook_size=C, depth=K, group_size=G, per_head=int(per_head), train_sample=2000,
                kmeans_iterations=5, ema_steps=20, batch_size=4096, lloyd_iterations=0, beam_width=1, seed=0,
                kvq_format_version=1, head_dim=D, num_kv_heads=H)
    for key, value in ints.items():
        f.attrs[key] = np.int64(value)
    for key, value in dict(ema_decay=0.99, ema_epsilon=1e-5, dead_threshold=0.0, held_out_fraction=0.25).items():
        f.attrs[key] = np.float64(value)
    strings = dict(kvq_format="rvq-codebooks", preset="fast", key_grouping="strided", value_grouping="contiguous",
                   init="points", source_dump="seed.h5", model="fuzz seed")
    for key, value in strings.items():
        f.attrs[key] = value
    kw = dict(chunks=True, fletcher32=True) if fletcher32 else {}
    books = np.sin(np.arange(K * C * G)).reshape(K, C, G).astype(np.float32)
    for kind in ("keys", "values"):
        group = f.create_group(f"layers/{layer_name}/{kind}")
        group.create_dataset("channel_order", data=np.arange(D, dtype=np.int32), **kw)
        group.attrs["relative_error"] = 0.5
        group.attrs["relative_error_by_depth"] = np.array([0.7, 0.5])
        if per_head:
            for h in range(H):
                group.create_dataset(f"head_{h}/codebooks", data=books + h, **kw)
        else:
            group.create_dataset("codebooks", data=books, **kw)
    return f


def codebook_cases(out: str):
    damage = functools.partial(damaged, write_codebooks)

    def soft_codebooks(f):
        del f["layers/0/keys/codebooks"]
        f["layers/0/keys/codebooks"] = h5py.SoftLink("/layers/0/values/codebooks")

    yield ("layer_named_00", damage(lambda f: None, layer_name="00"),
           "/layers/00: layer group name is not a decimal layer index (digits without sign or leading zeros)")
    yield ("layer_named_plus1", damage(lambda f: None, layer_name="+1"),
           "/layers/+1: layer group name is not a decimal layer index (digits without sign or leading zeros)")
    yield ("unknown_head_group",
           damage(lambda f: f.create_dataset("layers/0/values/head_7/codebooks", data=np.zeros((K, C, G), "f4")),
                  per_head=True),
           "/layers/0/values/head_7: unknown head group (this per-head file has head_0 … head_1)")
    yield ("head_group_in_shared_file",
           damage(lambda f: f.create_dataset("layers/0/keys/head_0/codebooks", data=np.zeros((K, C, G), "f4"))),
           "/layers/0/keys/head_0: head group in a file whose quantizers are not per head (per_head = 0)")
    yield ("soft_link_codebooks", damage(soft_codebooks),
           "/layers/0/keys/codebooks: is a soft or external link (the file's objects must be stored in the file "
           "itself)")
    yield ("model_not_utf8", damage(lambda f: f.attrs.create("model", b"\xff", dtype=h5py.string_dtype())),
           "/: attribute 'model' is not valid UTF-8 (byte 0xff at offset 0): \"\\xff\"")

    def checksum(path):
        write_codebooks(path).close()
        flip_byte(path, chunk_offset(path, "layers/0/values/codebooks", (0, 0, 0)) + 5)
    yield ("checksum_mismatch", checksum,
           "/layers/0/values/codebooks: checksum mismatch (Fletcher-32) in the chunk at [0, 0, 0] (stages [0, 2)): "
           "the file is damaged")


# ---- main -------------------------------------------------------------------------------------------

def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    data = os.path.join(root, "tests", "data")
    for sub in ("fuzz/dump", "fuzz/codebook", "malformed/dump", "malformed/codebook"):
        os.makedirs(os.path.join(data, sub), exist_ok=True)
    for name, kw in valid_dumps():
        write_dump(os.path.join(data, "fuzz", "dump", name + ".h5"), **kw).close()
    for per_head in (False, True):
        path = os.path.join(data, "fuzz", "codebook", ("per_head" if per_head else "shared") + ".h5")
        write_codebooks(path, per_head=per_head).close()
    write_codebooks(os.path.join(data, "fuzz", "codebook", "no_checksums_old_file.h5"), fletcher32=False).close()

    manifest = os.path.join(data, "malformed", "manifest.tsv")
    kept = []
    if os.path.exists(manifest):  # lines added by hand (files found by fuzzing) stay
        with open(manifest, encoding="utf-8") as f:
            kept = [line for line in f.read().splitlines() if line and not line.startswith("#")
                    and "\tgenerated\t" not in line]
    lines = []
    for reader, cases in (("dump", dump_cases), ("codebook", codebook_cases)):
        for name, build, expected in cases(data):
            rel = f"{reader}/{name}.h5"
            build(os.path.join(data, "malformed", rel))
            lines.append(f"{reader}\t{rel}\tgenerated\t{expected}")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("# reader\tfile (under tests/data/malformed)\torigin\texpected message after \"<file>: \"\n")
        f.write("\n".join(lines + kept) + "\n")


if __name__ == "__main__":
    main()
