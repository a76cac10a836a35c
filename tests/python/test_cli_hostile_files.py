"""Hostile files through the CLI: every class of docs/reliability.md is refused with exit 2 and its message.

The files and messages are the committed corpus tests/data/malformed/ (scripts/make_fuzz_corpus.py, plus
files found by fuzzing); dumps go through `kvq info` and `kvq info --json`, codebook files through
`kvq eval --codebooks`. Besides the message: nothing else on stderr (no HDF5 error stack, no "infinite loop
closing library" at exit). Also: files the tools write carry Fletcher-32 checksums on every dataset, old files
without them still open. Needs KVQ_BIN and KVQ_SOURCE_DIR; skipped without them.
"""
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

KVQ_BIN = os.environ.get("KVQ_BIN")
SOURCE = os.environ.get("KVQ_SOURCE_DIR")
pytestmark = pytest.mark.skipif(not KVQ_BIN or not SOURCE, reason="KVQ_BIN or KVQ_SOURCE_DIR is not set")
DATA = os.path.join(SOURCE or "", "tests", "data")


def run(*args):
    return subprocess.run([KVQ_BIN, *map(str, args)], capture_output=True, text=True, errors="replace",
                          timeout=300)


def manifest():
    rows = []
    path = os.path.join(DATA, "malformed", "manifest.tsv")
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            reader, rel, _origin, expected = line.rstrip("\n").split("\t")
            rows.append(pytest.param(reader, rel, expected, id=rel))
    return rows


def assert_refused(r, path, expected):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if not line.startswith("kvq: backend:")]
    assert lines == [f"kvq: error: {path}: {expected}"], r.stderr


@pytest.mark.parametrize("reader,rel,expected", manifest())
def test_hostile_file_is_refused_with_exit_2_and_its_message(reader, rel, expected):
    path = os.path.join(DATA, "malformed", rel)
    if reader == "dump":
        assert_refused(run("info", path), path, expected)
        assert_refused(run("info", "--json", path), path, expected)
    else:
        dump = os.path.join(DATA, "fuzz", "dump", "float16_gzip.h5")
        r = run("eval", dump, "--codebooks", path, "--backend", "cpu", "--baseline-bits", "",
                "--baseline-channel-group", 8)
        assert_refused(r, path, expected)


def test_manifest_covers_every_class():
    names = {p.values[1].split("/")[-1].rsplit(".", 1)[0] for p in manifest()}
    for required in ("external_storage", "virtual_dataset", "soft_link_layers", "external_link_layers",
                     "short_chunk", "long_chunk", "gzip_bomb", "string_with_nul", "model_not_utf8_vlen",
                     "source_too_long", "tokens_never_written", "sequence_starts_never_written",
                     "rope_theta_denormal", "checksum_mismatch", "layer_named_00", "unknown_head_group"):
        assert required in names, required


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(DATA, "fuzz", "dump")))
                         if os.path.isdir(os.path.join(DATA, "fuzz", "dump")) else [])
def test_valid_seed_dumps_open(name):
    r = run("info", "--json", os.path.join(DATA, "fuzz", "dump", name))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_written_files_carry_checksums_and_a_flipped_byte_names_the_chunk(tmp_path):
    dump, books, codes = tmp_path / "d.h5", tmp_path / "cb.h5", tmp_path / "codes.h5"
    r = run("synth", "--out", dump, "--layers", 1, "--kv-heads", 2, "--head-dim", 16, "--tokens", 2500, "--seed", 3)
    assert r.returncode == 0, r.stderr
    r = run("train", dump, "--preset", "fast", "--codebook-size", 16, "--depth", 2, "--group-size", 8,
            "--train-sample", 2000, "--backend", "cpu", "--baseline-bits", "", "--out", books)
    assert r.returncode == 0, r.stderr
    r = run("encode", dump, "--codebooks", books, "--out", codes, "--backend", "cpu")
    assert r.returncode == 0, r.stderr
    for path in (dump, books, codes):
        with h5py.File(path, "r") as f:
            datasets = []
            f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            assert datasets
            for ds in datasets:
                assert ds.fletcher32, f"{path}:{ds.name} has no checksum"
    # Damage one byte of the second chunk of keys (tokens [1024, 2048)): refused, naming that chunk.
    with h5py.File(dump, "r") as f:
        info = f["layers/0/keys"].id.get_chunk_info_by_coord((1024, 0, 0))
    data = bytearray(dump.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0x01
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    r = run("info", bad)
    assert_refused(r, bad, "/layers/0/keys: checksum mismatch (Fletcher-32) in the chunk at [1024, 0, 0] "
                           "(tokens [1024, 2048)): the file is damaged")


def test_old_dump_without_checksums_opens(tmp_path):
    # Dumps made before checksums (the bundled sample was one until it was regenerated with
    # queries): the same datasets rewritten without the Fletcher-32 filter.
    old = tmp_path / "old.h5"
    shutil.copy(os.path.join(DATA, "fuzz", "dump", "float16_plain.h5"), old)
    with h5py.File(old, "a") as f:
        for layer in f["layers"].values():
            for kind in ("keys", "values"):
                d = layer[kind]
                data, chunks, attrs = d[()], d.chunks, dict(d.attrs)
                del layer[kind]
                n = layer.create_dataset(kind, data=data, chunks=chunks, fletcher32=False)
                n.attrs.update(attrs)
        assert not f["layers/0/keys"].fletcher32
    r = run("info", old)
    assert r.returncode == 0, r.stderr


def test_non_utf8_model_is_refused_by_info_json_not_a_crash(tmp_path):
    # Before: nlohmann::json threw on dump() and `kvq info --json` ended with exit 1.
    path = tmp_path / "latin1.h5"
    shutil.copy(os.path.join(DATA, "fuzz", "dump", "float16_gzip.h5"), path)
    with h5py.File(path, "a") as f:
        f.attrs.create("model", "Modèle".encode("latin-1"), dtype=h5py.string_dtype("utf-8"))
    r = run("info", "--json", path)
    assert_refused(r, path, "/: attribute 'model' is not valid UTF-8 (byte 0xe8 at offset 3): \"Mod\\xe8le\"")


def test_long_bad_value_is_quoted_short(tmp_path):
    path = tmp_path / "long.h5"
    shutil.copy(os.path.join(DATA, "fuzz", "dump", "float16_gzip.h5"), path)
    with h5py.File(path, "a") as f:
        f.attrs.create("model", b"x" * 5000 + b"\xff", dtype=h5py.string_dtype("utf-8"))
    r = run("info", path)
    assert r.returncode == 2
    assert "(byte 0xff at offset 5000): \"" + "x" * 100 + "…\" (5001 bytes)" in r.stderr, r.stderr
    assert len(r.stderr) < 400


def test_hostile_codebook_attribute_refused_by_eval_and_encode(tmp_path):
    dump = os.path.join(DATA, "fuzz", "dump", "float16_gzip.h5")
    books = os.path.join(DATA, "malformed", "codebook", "unknown_head_group.h5")
    r = run("encode", dump, "--codebooks", books, "--out", tmp_path / "c.h5", "--backend", "cpu")
    assert_refused(r, books, "/layers/0/values/head_7: unknown head group (this per-head file has head_0 … head_1)")
    assert not (tmp_path / "c.h5").exists()


def test_valid_seed_codebooks_evaluate():
    dump = os.path.join(DATA, "fuzz", "dump", "float16_gzip.h5")
    for name in ("shared.h5", "per_head.h5", "no_checksums_old_file.h5"):
        books = os.path.join(DATA, "fuzz", "codebook", name)
        r = run("eval", dump, "--codebooks", books, "--backend", "cpu", "--baseline-bits", "",
                "--held-out", 0)
        assert r.returncode == 0, (name, r.stderr)


def test_numpy_reads_checksummed_dump(tmp_path):
    # Checksums change nothing for readers of the format: h5py verifies them transparently.
    dump = tmp_path / "d.h5"
    assert run("synth", "--out", dump, "--layers", 1, "--kv-heads", 1, "--head-dim", 8, "--tokens", 64).returncode == 0
    with h5py.File(dump, "r") as f:
        keys = f["layers/0/keys"][...]
    assert keys.shape == (64, 1, 8) and np.isfinite(keys.astype(np.float32)).all()
