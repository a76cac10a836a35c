"""The numpy reference pass of tools/kvq_dump over a dump's sequences, timed (for bench_model_pass).

    python3 bench/numpy_pass.py MODEL.gguf DUMP.h5  ->  one JSON line: forward seconds, perplexity

Weights are dequantized before the clock starts (as the C++ pass loads them before it runs); the
time covers the forward pass of every sequence with its next-token log-likelihoods.
"""

import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from kvq_dump.gguf_llama import GgufLlama  # noqa: E402


def main():
    model = GgufLlama(sys.argv[1])
    with h5py.File(sys.argv[2], "r") as f:
        tokens = f["tokens"][:]
        starts = list(f["sequence_starts"][:]) if "sequence_starts" in f else [0]
    for name in model._tensors:  # dequantize everything up front
        model.weight(name)
    for layer in range(model.config.num_layers):
        model._attn_weights(layer)
    ends = starts[1:] + [len(tokens)]
    begin = time.perf_counter()
    nll = [model.forward(tokens[a:b], want_nll=True).nll for a, b in zip(starts, ends)]
    seconds = time.perf_counter() - begin
    print(json.dumps({"seconds": seconds, "perplexity": float(np.exp(np.concatenate(nll).mean())),
                      "tokens": int(len(tokens))}))


if __name__ == "__main__":
    main()
