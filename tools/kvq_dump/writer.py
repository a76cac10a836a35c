"""Writer for KV dump format v1 (HDF5), the files KVQ Studio opens.

The format is specified in docs/dump-format.md (root attributes, /layers/<L>/{keys,values,queries}
as [T, H, D] arrays, optional /tokens and /sequence_starts). This module needs only numpy and
h5py, so it can be tested, and used by any dumper, without a model.

Two entry points:
  * DumpWriter: streaming. The caller declares the header and the token count up front, then
    writes token slabs of each layer as the model produces them; close() publishes the file.
  * write_dump(): everything in memory at once (tests, small tools).

Files are written atomically: into "<path>.tmp-<pid>" beside the target, renamed with os.replace
on success, removed on any failure, so a reader never sees a half-written dump.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from typing import Mapping, Optional, Sequence

import h5py
import numpy as np

FORMAT_NAME = "kv-dump"
FORMAT_VERSION = 1
KINDS = ("keys", "values", "queries")
DTYPES = ("float16", "bfloat16", "float32")
FLOAT16_MAX = 65504.0
CHUNK_TOKENS = 1024  # chunks are [min(T, 1024), H, D], as the format recommends
# Free space kept beyond each slab: HDF5 cannot recover from a write that fails for lack of space
# (h5py 3.16 with HDF5 2.0 crashes while releasing the objects), so the writer stops before that.
DISK_MARGIN_BYTES = 8 << 20


class DumpWriteError(RuntimeError):
    """A dump could not be written; the message names the file and the problem."""


@dataclasses.dataclass
class DumpHeader:
    """Root attributes of a dump (see docs/dump-format.md)."""

    model: str
    num_layers: int  # layers of the model; the file may hold a subset
    num_kv_heads: int  # H_kv
    head_dim: int  # D
    key_rope: str = "pre"  # "pre": keys as projected, before the rotary embedding; or "post"
    num_q_heads: Optional[int] = None  # H_q; required when queries are stored
    rope_theta: Optional[float] = None
    rope_dim: Optional[int] = None  # rotated channels per head (D for a full rotary embedding)
    rope_layout: Optional[str] = None  # "half" (readers' default) or "interleaved"
    rope_inv_freq: Optional[np.ndarray] = None  # [rope_dim/2] the model's exact inverse frequencies
    attention_scale: Optional[float] = None  # softmax scale when it is not 1/sqrt(head_dim)
    source: str = ""  # tool, version, text or data set

    def validate(self) -> None:
        if not self.model:
            raise ValueError("model must be a non-empty string")
        for name in ("num_layers", "num_kv_heads", "head_dim"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.key_rope not in ("pre", "post"):
            raise ValueError(f'key_rope must be "pre" or "post", got {self.key_rope!r}')
        if self.num_q_heads is not None and self.num_q_heads <= 0:
            raise ValueError(f"num_q_heads must be positive, got {self.num_q_heads}")
        if self.rope_dim is not None and not 0 < self.rope_dim <= self.head_dim:
            raise ValueError(f"rope_dim must be in 1..head_dim, got {self.rope_dim}")
        if self.rope_layout is not None and self.rope_layout not in ("half", "interleaved"):
            raise ValueError(f'rope_layout must be "half" or "interleaved", got {self.rope_layout!r}')
        if self.rope_inv_freq is not None:
            freq = np.asarray(self.rope_inv_freq, dtype=np.float64)
            pairs = (self.rope_dim or self.head_dim) // 2
            if freq.shape != (pairs,) or not np.all(np.isfinite(freq)) or not np.all(freq > 0):
                raise ValueError(f"rope_inv_freq must hold rope_dim/2 = {pairs} finite positive values, got "
                                 f"shape {list(freq.shape)}")
        if self.attention_scale is not None and not (np.isfinite(self.attention_scale) and self.attention_scale > 0):
            raise ValueError(f"attention_scale must be positive, got {self.attention_scale}")


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """x: any shape, float32 (finite) -> same shape uint16, bfloat16 bits, round to nearest even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """bits: any shape uint16 bfloat16 -> same shape float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def estimate_bytes(num_tokens: int, heads_per_kind: Sequence[int], head_dim: int, dtype: str,
                   num_layers: int) -> int:
    """Upper bound of the payload (before compression): layers x kinds x T x H x D x itemsize."""
    itemsize = 4 if dtype == "float32" else 2
    return num_layers * sum(heads_per_kind) * num_tokens * head_dim * itemsize


def _is_disk_full(exc: BaseException) -> bool:
    # h5py reports HDF5 write failures as OSError whose errno is not always set; the text says why.
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left" in str(exc))


def _disk_full_error(path: str, exc: BaseException) -> DumpWriteError:
    return DumpWriteError(f"{path}: disk full while writing the dump ({exc}); free some space or "
                          f"write fewer layers/tokens (--layers, --max-tokens)")


class DumpWriter:
    """Streams a dump to disk. Use as a context manager; the file appears only after close().

    layers: layer indices to store; num_tokens: T (known up front: the format has one T for every
    layer and kind); with_queries: store /layers/<L>/queries ([T, H_q, D]); query_positions: store
    queries only for these tokens (ascending; written as /query_positions, queries become
    [len(query_positions), H_q, D]; write() still takes whole token slabs and keeps the rows of these
    tokens); dtype: "float16", "bfloat16" or "float32"; compression: gzip level 0-9 (0 = none), always
    with shuffle; every dataset carries Fletcher-32 checksums.
    """

    def __init__(self, path: str, header: DumpHeader, layers: Sequence[int], num_tokens: int,
                 dtype: str = "float16", with_queries: bool = False, compression: int = 4,
                 check_free_space: bool = True, query_positions: Optional[Sequence[int]] = None):
        header.validate()
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if num_tokens <= 0:
            raise ValueError(f"{path}: a dump needs at least one token, got {num_tokens}")
        layers = sorted(set(int(layer) for layer in layers))
        if not layers:
            raise ValueError(f"{path}: no layers to write")
        if layers[0] < 0 or layers[-1] >= header.num_layers:
            raise ValueError(f"{path}: layer indices must be in 0..{header.num_layers - 1}, got {layers}")
        if with_queries and header.num_q_heads is None:
            raise ValueError(f"{path}: num_q_heads is required when queries are stored")
        if query_positions is not None:
            query_positions = np.asarray(query_positions, dtype=np.int64)
            if not with_queries or query_positions.ndim != 1 or query_positions.size == 0 or \
                    np.any(np.diff(query_positions) <= 0) or query_positions[0] < 0 or \
                    query_positions[-1] >= num_tokens:
                raise ValueError(f"{path}: query_positions must be strictly ascending tokens in "
                                 f"0..{num_tokens - 1}, with queries stored")
        self.query_positions = query_positions

        self.path = os.fspath(path)
        self.header = header
        self.layers = layers
        self.num_tokens = int(num_tokens)
        self.dtype = dtype
        self.with_queries = with_queries
        self._check_free_space = check_free_space
        self._heads = {"keys": header.num_kv_heads, "values": header.num_kv_heads}
        if with_queries:
            self._heads["queries"] = int(header.num_q_heads)
        self._written = {(layer, kind): np.zeros(self._rows(kind), dtype=bool)
                         for layer in layers for kind in self._heads}
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise DumpWriteError(f"{self.path}: directory {directory} does not exist")
        if check_free_space:
            needed = sum(estimate_bytes(self._rows(kind), [heads], header.head_dim, dtype, len(layers))
                         for kind, heads in self._heads.items())
            free = shutil.disk_usage(directory).free
            if needed > free:
                raise DumpWriteError(f"{self.path}: not enough free disk space: the dump needs up to "
                                     f"{needed / 1e6:.1f} MB uncompressed, {free / 1e6:.1f} MB are free")
        self._tmp_path = f"{self.path}.tmp-{os.getpid()}"
        self._finished = False  # set by close() or abort()
        try:
            # Readers built on HDF5 1.10 (the application's minimum) must open the file; recent h5py
            # wheels bundle HDF5 2.x, whose newest object formats 1.10 cannot read.
            self._file = h5py.File(self._tmp_path, "w", libver=("earliest", "v110"))
            self._write_header(compression)
        except BaseException as exc:
            self._discard()
            if _is_disk_full(exc):
                raise _disk_full_error(self.path, exc) from exc
            raise

    def _rows(self, kind: str) -> int:
        """Rows of a dataset of this kind: T, or one per query position."""
        if kind == "queries" and self.query_positions is not None:
            return int(self.query_positions.size)
        return self.num_tokens

    def _write_header(self, compression: int) -> None:
        h = self.header
        attrs = self._file.attrs
        attrs["kvq_format"] = FORMAT_NAME
        attrs["kvq_format_version"] = np.int32(FORMAT_VERSION)
        attrs["model"] = h.model
        attrs["num_layers"] = np.int32(h.num_layers)
        attrs["num_kv_heads"] = np.int32(h.num_kv_heads)
        attrs["head_dim"] = np.int32(h.head_dim)
        attrs["key_rope"] = h.key_rope
        if h.num_q_heads is not None:
            attrs["num_q_heads"] = np.int32(h.num_q_heads)
        if h.rope_theta is not None:
            attrs["rope_theta"] = np.float64(h.rope_theta)
        if h.rope_dim is not None:
            attrs["rope_dim"] = np.int32(h.rope_dim)
        if h.rope_layout is not None:
            attrs["rope_layout"] = h.rope_layout
        if h.attention_scale is not None:
            attrs["attention_scale"] = np.float64(h.attention_scale)
        if h.source:
            attrs["source"] = h.source
        if h.rope_inv_freq is not None:
            self._file.create_dataset("rope_inv_freq", data=np.asarray(h.rope_inv_freq, dtype=np.float64),
                                      fletcher32=True)
        if self.query_positions is not None:
            self._file.create_dataset("query_positions", data=self.query_positions, fletcher32=True)

        storage = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32}[self.dtype]
        # Fletcher-32 per chunk (last in the pipeline, as the readers require): a damaged chunk is
        # refused by name instead of read as wrong numbers.
        filters = {"shuffle": True, "fletcher32": True}
        if compression > 0:
            filters.update(compression="gzip", compression_opts=int(compression))
        group = self._file.create_group("layers")
        for layer in self.layers:
            layer_group = group.create_group(str(layer))
            for kind, heads in self._heads.items():
                shape = (self._rows(kind), heads, h.head_dim)
                chunks = (min(self._rows(kind), CHUNK_TOKENS), heads, h.head_dim)
                ds = layer_group.create_dataset(kind, shape=shape, dtype=storage, chunks=chunks, **filters)
                if self.dtype == "bfloat16":
                    ds.attrs["dtype"] = "bfloat16"

    def write(self, layer: int, kind: str, token_begin: int, data: np.ndarray) -> None:
        """data: [n, H, D] float (any float dtype) for tokens token_begin .. token_begin + n - 1."""
        if (layer, kind) not in self._written:
            raise ValueError(f"{self.path}: layer {layer} / {kind} was not declared")
        data = np.asarray(data)
        heads = self._heads[kind]
        if data.ndim != 3 or data.shape[1:] != (heads, self.header.head_dim):
            raise ValueError(f"{self.path}: layers/{layer}/{kind}: expected [n, {heads}, "
                             f"{self.header.head_dim}], got {list(data.shape)}")
        end = token_begin + data.shape[0]
        if token_begin < 0 or end > self.num_tokens:
            raise ValueError(f"{self.path}: layers/{layer}/{kind}: tokens {token_begin}..{end} outside "
                             f"0..{self.num_tokens}")
        if self._check_free_space:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self._tmp_path))).free
            if free < data.size * 4 + DISK_MARGIN_BYTES:
                raise OSError(errno.ENOSPC, f"No space left on device (only {free / 1e6:.1f} MB free)")
        stored = self._convert(data, f"layers/{layer}/{kind}", token_begin)
        rows = slice(token_begin, end)
        if kind == "queries" and self.query_positions is not None:  # keep the rows of the chosen tokens
            first, last = np.searchsorted(self.query_positions, [token_begin, end])
            rows = slice(int(first), int(last))
            stored = stored[self.query_positions[rows] - token_begin]
            if stored.shape[0] == 0:
                return
        self._file[f"layers/{layer}/{kind}"][rows] = stored
        self._written[(layer, kind)][rows] = True

    def _convert(self, data: np.ndarray, where: str, token_begin: int) -> np.ndarray:
        x = data.astype(np.float32, copy=False)
        bad = ~np.isfinite(x)
        if bad.any():
            t, h, c = np.argwhere(bad)[0]
            raise ValueError(f"{self.path}: {where}: non-finite value {x[t, h, c]} at token "
                             f"{token_begin + t}, head {h}, channel {c}")
        if self.dtype == "float16":
            big = np.abs(x) > FLOAT16_MAX
            if big.any():
                t, h, c = np.argwhere(big)[0]
                raise ValueError(f"{self.path}: {where}: value {x[t, h, c]} at token {token_begin + t}, "
                                 f"head {h}, channel {c} overflows float16; use --dtype bfloat16 or float32")
            return x.astype(np.float16)
        if self.dtype == "bfloat16":
            return float32_to_bfloat16_bits(x)
        return x

    def write_tokens(self, tokens: np.ndarray) -> None:
        """tokens: [T] integer token ids."""
        tokens = np.asarray(tokens)
        if tokens.shape != (self.num_tokens,):
            raise ValueError(f"{self.path}: /tokens must be [{self.num_tokens}], got {list(tokens.shape)}")
        if tokens.size and (tokens.min() < 0 or tokens.max() > np.iinfo(np.int32).max):
            raise ValueError(f"{self.path}: token ids must fit int32")
        self._file.create_dataset("tokens", data=tokens.astype(np.int32), fletcher32=True)

    def write_sequence_starts(self, starts: Sequence[int]) -> None:
        """starts: [S] ascending token offsets where each concatenated sequence begins (first is 0)."""
        starts = np.asarray(starts, dtype=np.int64)
        if starts.ndim != 1 or starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or \
                starts[-1] >= self.num_tokens:
            raise ValueError(f"{self.path}: sequence_starts must be strictly ascending offsets in "
                             f"0..{self.num_tokens - 1} starting at 0, got {starts.tolist()}")
        self._file.create_dataset("sequence_starts", data=starts, fletcher32=True)

    def close(self) -> None:
        """Checks every declared slab was written, then publishes the file (atomic rename)."""
        if self._finished:
            raise DumpWriteError(f"{self.path}: the writer was already closed or aborted")
        missing = [f"layers/{layer}/{kind}" for (layer, kind), done in self._written.items() if not done.all()]
        if missing:
            self.abort()
            raise DumpWriteError(f"{self.path}: not every token was written for {', '.join(missing[:4])}"
                                 f"{' ...' if len(missing) > 4 else ''}; nothing was saved")
        try:
            self._file.close()
            self._file = None
            os.replace(self._tmp_path, self.path)
            self._finished = True
        except OSError as exc:
            self._discard()
            if _is_disk_full(exc):
                raise _disk_full_error(self.path, exc) from exc
            raise DumpWriteError(f"{self.path}: could not finish writing the dump: {exc}") from exc

    def abort(self) -> None:
        """Drops the partial file; the target path is left as it was."""
        self._discard()

    def _discard(self) -> None:
        self._finished = True
        file = getattr(self, "_file", None)
        if file is not None:
            try:
                file.close()
            except Exception:  # noqa: BLE001 - best effort on an already failing path
                pass
            self._file = None
        if os.path.exists(self._tmp_path):
            os.remove(self._tmp_path)

    def __enter__(self) -> "DumpWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._finished:  # the caller already closed or aborted
            return
        if exc_type is None:
            self.close()
            return
        self.abort()
        if _is_disk_full(exc):
            raise _disk_full_error(self.path, exc) from exc


def write_dump(path: str, header: DumpHeader, layers: Mapping[int, Mapping[str, np.ndarray]],
               tokens: Optional[np.ndarray] = None, sequence_starts: Optional[Sequence[int]] = None,
               dtype: str = "float16", compression: int = 4,
               query_positions: Optional[Sequence[int]] = None) -> None:
    """Writes a whole dump from memory.

    layers: {layer index: {"keys": [T, H_kv, D], "values": [T, H_kv, D], optional "queries":
    [T, H_q, D]}} float arrays; every layer must hold the same kinds and the same T.
    tokens: optional [T] int token ids; sequence_starts: optional [S] offsets (first is 0);
    query_positions: store only these tokens' queries (see DumpWriter).
    """
    if not layers:
        raise ValueError(f"{path}: no layers to write")
    first = next(iter(layers.values()))
    kinds = set(first)
    for layer, arrays in layers.items():
        if "keys" not in arrays or "values" not in arrays:
            raise ValueError(f"{path}: layer {layer} needs both keys and values")
        if set(arrays) != kinds or not kinds <= set(KINDS):
            raise ValueError(f"{path}: layer {layer} holds {sorted(arrays)}, expected {sorted(kinds)} "
                             f"(allowed: {KINDS})")
    num_tokens = int(np.asarray(first["keys"]).shape[0])
    for layer, arrays in layers.items():
        for kind, array in arrays.items():
            if np.asarray(array).shape[0] != num_tokens:
                raise ValueError(f"{path}: layers/{layer}/{kind} has {np.asarray(array).shape[0]} tokens, "
                                 f"expected {num_tokens} (T must be the same everywhere)")
    with DumpWriter(path, header, list(layers), num_tokens, dtype=dtype, with_queries="queries" in kinds,
                    compression=compression, query_positions=query_positions) as writer:
        for layer, arrays in layers.items():
            for kind, array in arrays.items():
                writer.write(layer, kind, 0, array)
        if tokens is not None:
            writer.write_tokens(tokens)
        if sequence_starts is not None:
            writer.write_sequence_starts(sequence_starts)
