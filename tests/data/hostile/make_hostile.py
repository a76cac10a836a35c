#!/usr/bin/env python3
"""Writes the hostile dumps of this directory (run from anywhere; needs numpy and h5py).

crash_global_heap.h5: a small valid dump (format v1, 2 layers x 2 kv heads x 8 channels,
16 tokens, float16) whose root attribute 'model' -- a variable-length string, stored in
the file's global heap -- has its heap object's size field set to 2**63 - 2**16. Debian
12's libhdf5 1.10.8 copies that many bytes while reading the attribute and dies of
SIGSEGV inside H5Aread, before any of kvq's own checks run. The isolated validator
must contain it: `kvq info` exits 2 with "the HDF5 library crashed (SIGSEGV) while
reading root attribute 'model': the file is damaged or hostile".
"""
import os
import struct
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write_valid(path):
    rng = np.random.default_rng(1)
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["kvq_format"] = "kv-dump"
        f.attrs["kvq_format_version"] = np.int64(1)
        f.attrs["model"] = "hostile test model"
        f.attrs["num_layers"] = np.int64(2)
        f.attrs["num_kv_heads"] = np.int64(2)
        f.attrs["head_dim"] = np.int64(8)
        f.attrs["key_rope"] = "pre"
        for layer in range(2):
            g = f.create_group(f"layers/{layer}")
            for kind in ("keys", "values"):
                g.create_dataset(kind, data=rng.standard_normal((16, 2, 8)).astype(np.float16))


def corrupt_model_heap_object(path):
    data = bytearray(open(path, "rb").read())
    heap = data.find(b"GCOL")
    if heap < 0:
        sys.exit("no global heap collection found")
    end = heap + struct.unpack_from("<Q", data, heap + 8)[0]
    offset = heap + 16
    while offset < end:
        index = struct.unpack_from("<H", data, offset)[0]
        size = struct.unpack_from("<Q", data, offset + 8)[0]
        if index == 0:
            break
        if data[offset + 16 : offset + 16 + size] == b"hostile test model":
            struct.pack_into("<Q", data, offset + 8, 0x7FFFFFFFFFFF0000)
            open(path, "wb").write(bytes(data))
            return
        offset += 16 + (size + 7) // 8 * 8
    sys.exit("the 'model' string is not in the global heap")


if __name__ == "__main__":
    target = os.path.join(HERE, "crash_global_heap.h5")
    write_valid(target)
    corrupt_model_heap_object(target)
    print("wrote", target)
