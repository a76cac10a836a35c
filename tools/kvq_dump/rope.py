"""Rotary position embedding (RoPE) in numpy, in both channel layouts of docs/dump-format.md.

"half" (Hugging Face Llama-family models, GPT-NeoX; "rotate_half"): pair i is channels (i, i + rope_dim/2).
"interleaved" (GPT-J; llama.cpp's own q/k row order): pair i is channels (2i, 2i + 1).
Pair i turns by position * inv_freq[i] radians; unscaled RoPE has inv_freq[i] = theta^(-2i/rope_dim). Keys
stored with key_rope="pre" are rotated by an application with these formulas and the dump's rope_layout and
/rope_inv_freq (or rope_theta).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

LAYOUTS = ("half", "interleaved")


def rope_inverse_frequencies(theta: float, rope_dim: int) -> np.ndarray:
    """[rope_dim/2] float64: theta^(-2i/rope_dim), the unscaled inverse frequencies."""
    if rope_dim % 2:
        raise ValueError(f"rope_dim must be even, got {rope_dim}")
    return theta ** (-np.arange(0, rope_dim, 2, dtype=np.float64) / rope_dim)


def rope_cos_sin(positions: np.ndarray, theta: Optional[float] = None, rope_dim: Optional[int] = None,
                 inv_freq: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """positions: [T] int -> (cos, sin), each [T, rope_dim/2] float64 (inv_freq overrides theta)."""
    if inv_freq is None:
        inv_freq = rope_inverse_frequencies(theta, rope_dim)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * np.asarray(inv_freq, dtype=np.float64)[None, :]
    return np.cos(angles), np.sin(angles)


def apply_rope(x: np.ndarray, positions: np.ndarray, theta: Optional[float] = None, rope_dim: Optional[int] = None,
               inv_freq: Optional[np.ndarray] = None, layout: str = "half") -> np.ndarray:
    """x: [T, H, D] float; positions: [T] -> [T, H, D] float32, the first rope_dim channels rotated.

    inv_freq ([rope_dim/2], e.g. a scaled RoPE's) takes precedence over theta; rope_dim defaults to
    2 * len(inv_freq), or D. Channels rope_dim..D-1 (partial rotary embeddings) pass through unchanged.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    x = np.asarray(x, dtype=np.float32)
    if rope_dim is None:
        rope_dim = 2 * len(inv_freq) if inv_freq is not None else x.shape[-1]
    half = rope_dim // 2
    cos, sin = rope_cos_sin(positions, theta, rope_dim, inv_freq)
    cos = cos[:, None, :].astype(np.float32)
    sin = sin[:, None, :].astype(np.float32)
    out = x.copy()
    if layout == "half":
        x1, x2 = x[..., :half], x[..., half:rope_dim]
        out[..., :half] = x1 * cos - x2 * sin
        out[..., half:rope_dim] = x2 * cos + x1 * sin
    else:
        x1, x2 = x[..., 0:rope_dim:2], x[..., 1:rope_dim:2]
        out[..., 0:rope_dim:2] = x1 * cos - x2 * sin
        out[..., 1:rope_dim:2] = x2 * cos + x1 * sin
    return out
