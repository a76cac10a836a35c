"""The files kvq writes hold exactly what they held when the pins were set.

tests/data/file_pins.json summarises the codebook files (HDF5 and npz), codes files
and reports of a fixed set of kvq runs on the bundled sample, written by the binary
before the refactors of issue 13 (file_pins.py says how). This test reruns the same
commands with today's binary and compares: every attribute's name, HDF5 type and value,
every dataset's dtype, shape and bytes (SHA-256), the npz config JSON and the reports
(without timings). A renamed attribute, a changed type (int64 → int32, 1 → true) or a
changed trained codebook fails it. A deliberate format change regenerates the pins in
the same commit and says why.
"""
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("numpy")
pytest.importorskip("h5py")

import file_pins  # noqa: E402  (tests/python is on sys.path under pytest's rootdir-less import)

KVQ_BIN = os.environ.get("KVQ_BIN")
SAMPLE = os.environ.get("KVQ_SAMPLE_DUMP")
PINS = Path(__file__).resolve().parent.parent / "data" / "file_pins.json"
pytestmark = pytest.mark.skipif(not KVQ_BIN or not SAMPLE or not os.path.exists(SAMPLE),
                                reason="KVQ_BIN or the bundled sample is missing")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return file_pins.run_all(KVQ_BIN, SAMPLE, tmp_path_factory.mktemp("pins"))


@pytest.fixture(scope="module")
def pinned():
    return json.loads(PINS.read_text())


def test_same_files_are_written(written, pinned):
    assert sorted(written) == sorted(pinned)


@pytest.mark.parametrize("name", sorted(json.loads(PINS.read_text())))
def test_file_matches_its_pin(written, pinned, name):
    got, want = written.get(name), pinned[name]
    if isinstance(want, dict) and isinstance(got, dict):
        # Name the first differing object and key, not a diff of the whole file.
        assert sorted(got) == sorted(want), f"{name}: objects differ"
        for key in want:
            assert got[key] == want[key], f"{name}: {key} differs"
    assert got == want
