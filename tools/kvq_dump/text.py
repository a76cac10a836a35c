"""Text files -> token sequences for a dump.

Each file is tokenized on its own; a file longer than seq_len tokens is cut into consecutive
windows of seq_len tokens, each run as an independent sequence (fresh context, positions from 0).
The concatenation of all sequences is the dump's token axis; /sequence_starts records where each
begins.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def read_text(path: str) -> str:
    """The file's text (UTF-8, undecodable bytes replaced); refuses empty files."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read text file: {exc.strerror or exc}") from exc
    if not text.strip():
        raise ValueError(f"{path}: text file is empty")
    return text


def make_sequences(token_lists: Sequence[Sequence[int]], seq_len: int | None,
                   max_tokens: int | None, max_file_tokens: int | None = None,
                   min_len: int = 2) -> list[np.ndarray]:
    """token_lists: one list of ids per file -> sequences ([n_i] int64 each).

    seq_len: window length (None: one sequence per file); max_tokens: cap on the total (the last
    sequence is shortened; None: no cap); max_file_tokens: only the first tokens of each file
    (None: all). Windows shorter than min_len tokens are dropped.
    """
    if seq_len is not None and seq_len < min_len:
        raise ValueError(f"seq_len must be at least {min_len}, got {seq_len}")
    sequences: list[np.ndarray] = []
    total = 0
    for ids in token_lists:
        ids = np.asarray(ids, dtype=np.int64)[:max_file_tokens]
        step = seq_len or max(len(ids), 1)
        for begin in range(0, len(ids), step):
            window = ids[begin:begin + step]
            if max_tokens is not None:
                window = window[:max(0, max_tokens - total)]
            if len(window) >= min_len:
                sequences.append(window)
                total += len(window)
        if max_tokens is not None and total >= max_tokens:
            break
    if not sequences:
        raise ValueError("no tokens to dump (texts too short or --max-tokens too small)")
    return sequences


def tokenize_files(paths: Sequence[str], encode: Callable[[str], list[int]]) -> list[list[int]]:
    """paths: text files; encode: text -> ids (with whatever BOS the model expects)."""
    return [list(encode(read_text(p))) for p in paths]


def sequence_starts(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """[S] int64 offsets of each sequence in the concatenation."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def parse_layers(spec: str, num_layers: int) -> list[int]:
    """"all", "0,4,8" or "start:stop:step" (Python slice over 0..num_layers-1) -> sorted indices."""
    spec = spec.strip()
    if spec == "all":
        return list(range(num_layers))
    if ":" in spec:
        parts = [int(p) if p else None for p in spec.split(":")]
        layers = list(range(num_layers))[slice(*parts)]
    else:
        layers = [int(p) for p in spec.split(",") if p.strip()]
    bad = [layer for layer in layers if not 0 <= layer < num_layers]
    if bad or not layers:
        raise ValueError(f"--layers {spec!r}: the model has layers 0..{num_layers - 1}")
    return sorted(set(layers))
