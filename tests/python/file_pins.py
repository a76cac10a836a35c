"""What kvq's output files hold, reduced to a comparable summary (test_file_pins.py).

Runs a fixed set of kvq commands on the bundled sample (training with the fast and
quality presets, per layer and per head, each k-means initialisation; encoding; eval;
a sweep) and summarises every file they write: each HDF5 object's attributes (name,
HDF5 type, shape, value) and datasets (dtype, shape, SHA-256 of the bytes), each npz
array the same way plus its config JSON, and the CSV/JSON reports without timings.
The CPU kernels are forced to their scalar path (KVQ_CPU_ISA=scalar), so the summary
does not depend on the machine's vector instructions.

    python3 tests/python/file_pins.py KVQ_BIN SAMPLE tests/data/file_pins.json

writes the pins (run it with the binary whose files are the reference).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import h5py

# (name, arguments); {dump} is the sample, {out} the output folder. Each run's files
# are named after it.
RUNS = [
    ("fast", ["train", "{dump}", "--preset", "fast", "--layers", "0,4", "--codebook-size", "16", "--depth", "2",
              "--train-sample", "2000", "--seed", "3", "--out", "{out}/fast.h5", "--npz", "{out}/fast.npz",
              "--report", "{out}/fast.json", "--csv", "{out}/fast.csv"]),
    ("fast_codes", ["encode", "{dump}", "--codebooks", "{out}/fast.h5", "--out", "{out}/fast_codes.h5"]),
    ("fast_eval", ["eval", "{dump}", "--codebooks", "{out}/fast.h5", "--held-out", "0.5",
                   "--report", "{out}/fast_eval.json", "--csv", "{out}/fast_eval.csv"]),
    ("quality", ["train", "{dump}", "--preset", "quality", "--layers", "8", "--per-head", "--codebook-size", "16",
                 "--depth", "3", "--train-sample", "1000", "--ema-steps", "5", "--batch-size", "512",
                 "--key-grouping", "contiguous", "--value-grouping", "strided", "--seed", "11",
                 "--out", "{out}/quality.h5", "--npz", "{out}/quality.npz", "--report", "{out}/quality.json"]),
    ("quality_codes", ["encode", "{dump}", "--codebooks", "{out}/quality.h5", "--out", "{out}/quality_codes.h5"]),
    ("progressive", ["train", "{dump}", "--preset", "paper", "--layers", "12", "--kinds", "values",
                     "--init", "progressive", "--codebook-size", "32", "--depth", "2", "--group-size", "16",
                     "--train-sample", "3000", "--ema-steps", "4", "--batch-size", "1024", "--held-out", "0.1",
                     "--ema-decay", "0.9", "--ema-epsilon", "1e-4", "--dead-threshold", "0.01",
                     "--lloyd-iterations", "1", "--kmeans-iterations", "3", "--baseline-bits", "3",
                     "--out", "{out}/progressive.h5", "--npz", "{out}/progressive.npz"]),
    ("sweep", ["sweep", "{dump}", "--preset", "fast", "--layers", "16", "--codebook-sizes", "16,32",
               "--depths", "1-2", "--train-sample", "2000", "--csv", "{out}/sweep.csv", "--json", "{out}/sweep.json"]),
]

# Report keys whose values depend on the machine or the run, not on the engine.
VOLATILE = {"seconds", "timings", "backend", "dump", "total_seconds", "train_seconds", "eval_seconds",
            "encode_seconds", "dump_path", "source_dump"}


def digest(array):
    data = np.ascontiguousarray(array)
    return {"dtype": str(data.dtype), "shape": list(data.shape),
            "sha256": hashlib.sha256(data.tobytes()).hexdigest()}


def plain(value):
    """An attribute value as JSON, keeping its type: 1 and 1.0 and True stay apart."""
    if isinstance(value, bytes):
        return {"bytes": value.decode()}
    if isinstance(value, np.ndarray):
        return {"array": [plain(v) for v in value.tolist()], "dtype": str(value.dtype)}
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return {"int": int(value)}
    if isinstance(value, (np.floating, float)):
        return {"float": repr(float(value))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def attributes(obj):
    out = {}
    for name in sorted(obj.attrs):
        attr = obj.attrs.get_id(name)
        value = obj.attrs[name]
        text = value.decode() if isinstance(value, bytes) else value
        if isinstance(text, str) and text.startswith("/"):
            value = os.path.basename(text)  # a path of this run: the dump, the codebook file
        out[name] = {"type": str(attr.dtype), "shape": list(attr.shape), "value": plain(value)}
    return out


def summarise_h5(path):
    objects = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            entry = {"attrs": attributes(obj)}
            if isinstance(obj, h5py.Dataset):
                entry.update(digest(obj[()]))
            objects[name] = entry
        objects["/"] = {"attrs": attributes(f)}
        f.visititems(visit)
    return objects


def canonical_config(text):
    config = json.loads(text)
    config["source_dump"] = os.path.basename(config["source_dump"])
    return json.dumps(config, sort_keys=True)


def summarise_npz(path):
    out = {}
    with np.load(path) as z:
        for name in sorted(z.files):
            out[name] = canonical_config(str(z[name][()])) if name == "config" else digest(z[name])
    return out


def without_volatile(value):
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return os.path.basename(value)  # a path of this run (the codebook file eval read)
    return value


def summarise(path):
    if path.suffix == ".h5":
        return summarise_h5(path)
    if path.suffix == ".npz":
        return summarise_npz(path)
    if path.suffix == ".json":
        return without_volatile(json.loads(path.read_text()))
    return path.read_text()


def run_all(kvq_bin, dump, out):
    dump = os.path.abspath(dump)  # paths inside the files are pinned by their base name
    env = dict(os.environ, KVQ_CPU_ISA="scalar")
    for name, args in RUNS:
        argv = [kvq_bin] + [a.format(dump=dump, out=out) for a in args] + ["--backend", "cpu", "--threads", "2"]
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{name}: exit {r.returncode}: {r.stderr}")
    return {p.name: summarise(p) for p in sorted(Path(out).iterdir())}


def main():
    kvq_bin, dump, target = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as out:
        pins = run_all(kvq_bin, dump, out)
    Path(target).write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
