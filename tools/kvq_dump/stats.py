"""Per-layer statistics of a dump as a Markdown table (the numbers in docs/real-data.md).

    PYTHONPATH=tools python3 -m kvq_dump.stats resources/samples/smollm2-135m-kv.h5

Per layer and kind (keys, values), over all tokens, heads and channels:
  mean|x|, rms, max|x|; excess kurtosis m4/m2^2 - 3 (0 for a Gaussian);
  outlier: the (head, channel) with the largest mean |x|, as a multiple of the median channel's;
  n>4x: how many of the H*D channels have a mean |x| above 4x the median channel's;
  offset: share of the energy sum(x^2) carried by the per-channel means (a constant per channel);
  low-freq: share of the energy in the rotary pairs with the lower half of the frequencies
  (channels D/4..D/2-1 and 3D/4..D-1 in the Hugging Face layout; 0.5 when energy is spread evenly).
"""

from __future__ import annotations

import argparse
import sys

import h5py
import numpy as np

from .writer import bfloat16_bits_to_float32


def read_kind(f: h5py.File, layer: str, kind: str) -> np.ndarray:
    """[T, H, D] float64 (bfloat16 decoded)."""
    ds = f[f"layers/{layer}/{kind}"]
    data = ds[:]
    if ds.attrs.get("dtype") == "bfloat16":
        data = bfloat16_bits_to_float32(data)
    return data.astype(np.float64)


def kind_stats(x: np.ndarray) -> dict:
    """x: [T, H, D] -> the statistics described in the module docstring."""
    d = x.shape[2]
    centered = x - x.mean()
    m2 = np.mean(centered ** 2)
    channel = np.abs(x).mean(axis=0)  # [H, D]
    median = np.median(channel)
    head, chan = np.unravel_index(np.argmax(channel), channel.shape)
    energy = (x ** 2).mean(axis=0)  # [H, D]
    low = np.r_[d // 4:d // 2, 3 * d // 4:d]
    return {
        "mean_abs": float(np.abs(x).mean()),
        "rms": float(np.sqrt((x ** 2).mean())),
        "max_abs": float(np.abs(x).max()),
        "kurtosis": float(np.mean(centered ** 4) / m2 ** 2 - 3),
        "outlier": (int(head), int(chan), float(channel[head, chan] / median) if median > 0 else float("inf")),
        "n_over_4x": int((channel > 4 * median).sum()),
        "offset_share": float((x.mean(axis=0) ** 2).sum() / energy.sum()),
        "low_freq_share": float(energy[:, low].sum() / energy.sum()),
    }


def markdown_table(path: str) -> str:
    rows = ["| layer | kind | mean\\|x\\| | rms | max\\|x\\| | kurtosis | outlier (head, ch: × median) | n>4× "
            "| offset | low-freq |", "|---|---|---|---|---|---|---|---|---|---|"]
    with h5py.File(path, "r") as f:
        for layer in sorted(f["layers"], key=int):
            for kind in ("keys", "values"):
                s = kind_stats(read_kind(f, layer, kind))
                h, c, ratio = s["outlier"]
                rows.append(f"| {layer} | {kind} | {s['mean_abs']:.3f} | {s['rms']:.3f} | {s['max_abs']:.2f} | "
                            f"{s['kurtosis']:.2f} | h{h} c{c}: {ratio:.1f}× | {s['n_over_4x']} | "
                            f"{s['offset_share']:.2f} | {s['low_freq_share']:.2f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kvq_dump.stats", description=__doc__.splitlines()[0])
    parser.add_argument("dump")
    args = parser.parse_args(argv)
    print(markdown_table(args.dump))
    return 0


if __name__ == "__main__":
    sys.exit(main())
