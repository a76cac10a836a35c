"""The model-independent part of a dump run: sequences in, one dump file out.

A backend (gguf_llama, hf_dump) supplies `run_sequence(ids) -> {layer: {kind: [n, H, D]}}`; the
driver runs it over every sequence, streams the slabs into a DumpWriter at the right token
offset, and stores /tokens and /sequence_starts.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .progress import progress
from .text import sequence_starts
from .writer import DumpHeader, DumpWriter

RunSequence = Callable[[np.ndarray], Mapping[int, Mapping[str, np.ndarray]]]


def dump_sequences(out: str, header: DumpHeader, layers: Sequence[int], sequences: Sequence[np.ndarray],
                   run_sequence: RunSequence, dtype: str = "float16", with_queries: bool = False,
                   compression: int = 4, show_progress: bool = True) -> int:
    """sequences: [n_i] token ids each -> writes `out`; returns T (total tokens)."""
    starts = sequence_starts(sequences)
    total = int(sum(len(s) for s in sequences))
    kinds = ("keys", "values", "queries") if with_queries else ("keys", "values")
    with DumpWriter(out, header, layers, total, dtype=dtype, with_queries=with_queries,
                    compression=compression) as writer:
        for begin, ids in progress(zip(starts, sequences), len(sequences), "sequences", show_progress):
            captured = run_sequence(ids)
            for layer in layers:
                for kind in kinds:
                    writer.write(layer, kind, int(begin), captured[layer][kind])
        writer.write_tokens(np.concatenate(sequences))
        writer.write_sequence_starts(starts)
    return total
