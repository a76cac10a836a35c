"""The model-independent part of a dump run: sequences in, one dump file out.

A backend (gguf_llama, hf_dump) supplies `run_sequence(ids) -> {layer: {kind: [n, H, D]}}`; the
driver runs it over every sequence, streams the slabs into a DumpWriter at the right token
offset, and stores /tokens and /sequence_starts.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from .progress import progress
from .text import sequence_starts
from .writer import DumpHeader, DumpWriter

RunSequence = Callable[[np.ndarray], Mapping[int, Mapping[str, np.ndarray]]]


def tail_positions(sequences: Sequence[np.ndarray], fraction: float) -> np.ndarray:
    """[n] int64: the last round(fraction * length) tokens of every sequence, in the concatenation.

    The rounding is C's llround (halves away from zero), as KVQ Studio's held-out split uses, so the
    tokens are exactly the held-out tail the studio evaluates with the same fraction."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"--query-tail must be in (0, 1], got {fraction}")
    positions = []
    for begin, seq in zip(sequence_starts(sequences), sequences):
        n = len(seq)
        held = int(np.floor(fraction * n + 0.5))
        positions.extend(range(int(begin) + n - held, int(begin) + n))
    if not positions:
        raise ValueError(f"--query-tail {fraction} keeps no token of these sequences")
    return np.asarray(positions, dtype=np.int64)


def dump_sequences(out: str, header: DumpHeader, layers: Sequence[int], sequences: Sequence[np.ndarray],
                   run_sequence: RunSequence, dtype: str = "float16", with_queries: bool = False,
                   compression: int = 4, show_progress: bool = True,
                   query_positions: Optional[np.ndarray] = None) -> int:
    """sequences: [n_i] token ids each -> writes `out`; returns T (total tokens).

    query_positions: store only these tokens' queries (/query_positions), e.g. tail_positions()."""
    starts = sequence_starts(sequences)
    total = int(sum(len(s) for s in sequences))
    kinds = ("keys", "values", "queries") if with_queries else ("keys", "values")
    with DumpWriter(out, header, layers, total, dtype=dtype, with_queries=with_queries,
                    compression=compression, query_positions=query_positions) as writer:
        for begin, ids in progress(zip(starts, sequences), len(sequences), "sequences", show_progress):
            captured = run_sequence(ids)
            for layer in layers:
                for kind in kinds:
                    writer.write(layer, kind, int(begin), captured[layer][kind])
        writer.write_tokens(np.concatenate(sequences))
        writer.write_sequence_starts(starts)
    return total
