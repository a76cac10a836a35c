"""Fidelity of the C++ model pass on the real model of the bundled sample (ctest label "model").

The reference pass of `kvq ppl` must reproduce the keys and values stored in
resources/samples/smollm2-135m-kv.h5 at every stored layer (relative error <= 1e-3 against the
float16 storage) and the sample's published perplexity 18.64 (+-0.02; 19.72 and 17.62 per text),
and an untouched cache must give KL exactly 0.

The model (about 100 MB) comes from scripts/fetch_model.sh, which scripts/test.sh runs before
ctest and which exports KVQ_SMOLLM2_GGUF. Without it the tests skip, unless KVQ_REQUIRE_MODEL=1
(CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("KVQ_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SAMPLE = Path(os.environ.get("KVQ_SAMPLE_DUMP", SOURCE_DIR / "resources/samples/smollm2-135m-kv.h5"))
# The bundled evaluation dump: other text (Apache-2.0 and MPL-2.0 license texts), layers 0, 12, 24.
EVAL = SOURCE_DIR / "resources/samples/smollm2-135m-eval.h5"


def _need(var: str, what: str) -> str:
    path = os.environ.get(var, "")
    if path and os.path.isfile(path):
        return path
    message = f"{var} does not name {what}"
    if os.environ.get("KVQ_REQUIRE_MODEL") == "1":
        pytest.fail(message + " (KVQ_REQUIRE_MODEL=1)")
    pytest.skip(message)


def _ppl(*args: str, dump: Path = SAMPLE) -> dict:
    kvq = _need("KVQ_BIN", "the kvq binary")
    model = _need("KVQ_SMOLLM2_GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf (bash scripts/fetch_model.sh)")
    run = subprocess.run([kvq, "ppl", str(dump), "--model", model, "--json", *args], capture_output=True,
                         text=True, timeout=1200)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_reference_pass_reproduces_the_sample():
    report = _ppl()
    assert report["reference"]["tokens"] == 4094
    assert abs(report["reference"]["perplexity"] - 18.64) <= 0.02, report["reference"]
    per_text = [s["perplexity"] for s in report["reference"]["sequences"]]
    assert abs(per_text[0] - 19.72) <= 0.02 and abs(per_text[1] - 17.62) <= 0.02, per_text
    agreement = report["dump_agreement"]
    assert sorted({(a["layer"], a["kind"]) for a in agreement}) == [
        (layer, kind) for layer in range(0, 30, 4) for kind in ("keys", "values")]
    worst = max(a["relative_error"] for a in agreement)
    assert worst <= 1e-3, agreement


def test_untouched_cache_changes_nothing_and_kivi2_does():
    report = _ppl("--identity", "--kivi", "2", "--max-tokens", "256", "--no-check-dump")
    identity, kivi = report["variants"]
    assert identity["label"] == "identity" and identity["mean_kl"] == 0.0
    assert identity["top1_agreement"] == 1.0
    assert identity["perplexity"] == report["reference"]["perplexity"]
    assert kivi["label"] == "kivi-2" and kivi["mean_kl"] > 0.01 and kivi["bits_per_channel"] == 3.0


def test_reference_pass_reproduces_the_evaluation_dump():
    """The dump that codebooks trained on the sample are judged on (docs/real-data.md, issue 15)."""
    report = _ppl(dump=EVAL)
    assert report["sequence_tokens"] == [2048, 2048]
    assert report["reference"]["tokens"] == 4094
    assert abs(report["reference"]["perplexity"] - 12.138) <= 0.02, report["reference"]
    agreement = report["dump_agreement"]
    assert sorted({(a["layer"], a["kind"]) for a in agreement}) == [
        (layer, kind) for layer in (0, 12, 24) for kind in ("keys", "values")]
    assert max(a["relative_error"] for a in agreement) <= 1e-3, agreement
