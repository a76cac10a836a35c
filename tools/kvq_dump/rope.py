"""Rotary position embedding (RoPE) in the Hugging Face channel layout, in numpy.

Hugging Face Llama-family models rotate channel pairs (i, i + rope_dim/2) of each head
("rotate_half"); frequency i is theta^(-2i/rope_dim). Keys stored with key_rope="pre" are in this
layout, so an application can rotate them with these formulas.
"""

from __future__ import annotations

import numpy as np


def rope_cos_sin(positions: np.ndarray, theta: float, rope_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """positions: [T] int -> (cos, sin), each [T, rope_dim/2] float64."""
    if rope_dim % 2:
        raise ValueError(f"rope_dim must be even, got {rope_dim}")
    inv_freq = theta ** (-np.arange(0, rope_dim, 2, dtype=np.float64) / rope_dim)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles), np.sin(angles)


def apply_rope(x: np.ndarray, positions: np.ndarray, theta: float, rope_dim: int | None = None) -> np.ndarray:
    """x: [T, H, D] float; positions: [T] -> [T, H, D] float32, the first rope_dim channels rotated.

    Channels rope_dim..D-1 (partial rotary embeddings) pass through unchanged.
    """
    x = np.asarray(x, dtype=np.float32)
    rope_dim = x.shape[-1] if rope_dim is None else rope_dim
    half = rope_dim // 2
    cos, sin = rope_cos_sin(positions, theta, rope_dim)
    cos = cos[:, None, :].astype(np.float32)
    sin = sin[:, None, :].astype(np.float32)
    out = x.copy()
    x1 = x[..., :half]
    x2 = x[..., half:rope_dim]
    out[..., :half] = x1 * cos - x2 * sin
    out[..., half:rope_dim] = x2 * cos + x1 * sin
    return out
