"""A numpy forward pass of Llama-architecture GGUF models ("llama", and "qwen2" with its q/k/v
biases), capturing K/V activations.

This is how the bundled sample was made without PyTorch: the `gguf` package reads the tensors
(and dequantizes Q4_1/Q8_0/... weights), the `tokenizers` package rebuilds the byte-level BPE
tokenizer from the vocabulary and merges stored in the file, and ~100 lines of numpy run the
decoder blocks in float32.

Channel layout. llama.cpp's converter permutes the rows of attn_q/attn_k of every head so that
its rotary embedding can rotate adjacent channel pairs (2i, 2i+1): Hugging Face row
h*D + s*D/2 + i (s in {0,1}, i < D/2) is stored as row h*D + 2i + s. We undo that permutation on
load, so the captured pre-RoPE keys/queries have the Hugging Face layout (rotate_half pairs
channel i with i + D/2), exactly as `k_proj` of the original model produces them. "qwen2" files
are not permuted (llama.cpp rotates them NeoX-style, which is the Hugging Face layout already).

It is also the reference the C++ model pass (core/src/model/) is tested against
(tests/python/test_model_pass.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Optional

import numpy as np

from .rope import apply_rope, rope_inverse_frequencies


class UnsupportedModelError(ValueError):
    """The GGUF file is not a model this module can run."""


@dataclasses.dataclass
class LlamaConfig:
    name: str
    arch: str
    num_layers: int
    hidden: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    ffn: int
    rope_theta: float
    rope_dim: int
    rope_inv_freq: np.ndarray  # [rope_dim/2] float64, the frequencies the forward pass rotates with
    rms_eps: float
    vocab_size: int
    bos_id: Optional[int]
    add_bos: bool


@dataclasses.dataclass
class ForwardResult:
    """captures: {layer: {"keys": [T, H_kv, D], "values": [T, H_kv, D], "queries": [T, H_q, D]}}
    float32; nll: [T-1] float64 negative log-likelihood of token t+1 given tokens 0..t, or None;
    last_logits: [vocab] float32 logits after the last token, or None."""

    captures: dict
    nll: Optional[np.ndarray]
    last_logits: Optional[np.ndarray]
    logits: Optional[np.ndarray] = None  # [T, vocab] float32 when asked for


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """w: [n_head * D, in] in llama.cpp's rotary row order -> same shape in Hugging Face order."""
    d = w.shape[0] // n_head
    return w.reshape(n_head, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x: [T, hidden] float32 -> [T, hidden] float32."""
    scale = 1.0 / np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True) + eps)
    return (x * scale).astype(np.float32) * weight


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """q: [T, H_q, D], k/v: [T, H_kv, D] (post-RoPE) -> [T, H_q * D] float32; GQA: query head h
    attends with key/value head h // (H_q / H_kv)."""
    t, hq, d = q.shape
    group = hq // k.shape[1]
    out = np.empty((t, hq, d), dtype=np.float32)
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    for h in range(hq):
        scores = (q[:, h, :] @ k[:, h // group, :].T) / np.float32(np.sqrt(d))
        scores[mask] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=1, keepdims=True)
        out[:, h, :] = probs @ v[:, h // group, :]
    return out.reshape(t, hq * d)


class GgufLlama:
    """A Llama-architecture GGUF model held as dequantized float32 weights ([out, in] matrices)."""

    def __init__(self, path: str):
        try:
            import gguf
        except ImportError as exc:
            raise ImportError("reading GGUF models needs the `gguf` package: "
                              "pip install -r tools/requirements-sample.txt") from exc
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: model file not found")
        self.path = path
        try:
            self._reader = gguf.GGUFReader(path)
        except Exception as exc:  # noqa: BLE001 - gguf raises assorted errors on bad files
            raise UnsupportedModelError(f"{path}: not a readable GGUF file: {exc}") from exc
        self._gguf = gguf
        arch = _field(self._reader, "general.architecture")
        if arch not in ("llama", "qwen2"):
            raise UnsupportedModelError(f"{path}: architecture {arch!r} is not supported (only 'llama' and "
                                        f"'qwen2'; use the Hugging Face dumper for other models)")
        self._arch = arch
        self.config = self._read_config()
        self._tensors = {t.name: t for t in self._reader.tensors}
        self._cache: dict[str, np.ndarray] = {}  # dequantized tensors by GGUF name
        self._qk_hf: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per layer: (wq, wk) in HF row order
        if "rope_freqs.weight" in self._tensors:  # Llama 3.1-style frequency factors: f_i / factor_i
            factors = self.weight("rope_freqs.weight").astype(np.float64)
            if factors.shape != self.config.rope_inv_freq.shape:
                raise UnsupportedModelError(f"{path}: rope_freqs.weight has shape {list(factors.shape)}, expected "
                                            f"[{self.config.rope_dim // 2}]")
            self.config.rope_inv_freq = self.config.rope_inv_freq / factors

    def _read_config(self) -> LlamaConfig:
        r, a = self._reader, self._arch
        hidden = int(_field(r, f"{a}.embedding_length"))
        heads = int(_field(r, f"{a}.attention.head_count"))
        head_dim = hidden // heads
        tokens = _field(r, "tokenizer.ggml.tokens") or []
        theta = float(_field(r, f"{a}.rope.freq_base", 10000.0))
        rope_dim = int(_field(r, f"{a}.rope.dimension_count", head_dim))
        inv_freq = rope_inverse_frequencies(theta, rope_dim)
        scaling = _field(r, f"{a}.rope.scaling.type")
        if scaling == "linear":  # positions divided by the factor, as llama.cpp's freq_scale does
            inv_freq = inv_freq / float(_field(r, f"{a}.rope.scaling.factor", 1.0))
        elif scaling not in (None, "none"):
            raise UnsupportedModelError(f"{self.path}: RoPE scaling {scaling!r} is not supported (none, linear, "
                                        f"or Llama 3 frequency factors)")
        bos = _field(r, "tokenizer.ggml.bos_token_id")
        return LlamaConfig(
            name=str(_field(r, "general.name", os.path.basename(self.path))),
            arch=a,
            num_layers=int(_field(r, f"{a}.block_count")),
            hidden=hidden,
            num_q_heads=heads,
            num_kv_heads=int(_field(r, f"{a}.attention.head_count_kv", heads)),
            head_dim=head_dim,
            ffn=int(_field(r, f"{a}.feed_forward_length")),
            rope_theta=theta,
            rope_dim=rope_dim,
            rope_inv_freq=inv_freq,
            rms_eps=float(_field(r, f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
            vocab_size=int(_field(r, f"{a}.vocab_size", len(tokens))),
            bos_id=None if bos is None else int(bos),
            add_bos=bool(_field(r, "tokenizer.ggml.add_bos_token", False)),
        )

    def metadata(self, key: str, default=None):
        """A raw GGUF metadata value (e.g. "general.license")."""
        return _field(self._reader, key, default)

    def weight(self, name: str) -> np.ndarray:
        """The named tensor dequantized to float32; matrices are [out, in] (torch Linear layout)."""
        if name not in self._cache:
            tensor = self._tensors.get(name)
            if tensor is None:
                raise UnsupportedModelError(f"{self.path}: tensor {name!r} is missing")
            data = self._gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            self._cache[name] = np.ascontiguousarray(data, dtype=np.float32)
        return self._cache[name]

    def _attn_weights(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(wq [H_q*D, hidden], wk [H_kv*D, hidden], wv, wo) with q/k rows in Hugging Face order."""
        c = self.config
        if layer not in self._qk_hf:
            wq, wk = self.weight(f"blk.{layer}.attn_q.weight"), self.weight(f"blk.{layer}.attn_k.weight")
            if c.arch == "llama":  # qwen2 files keep the Hugging Face row order
                wq, wk = unpermute_rows(wq, c.num_q_heads), unpermute_rows(wk, c.num_kv_heads)
            # Keep only the Hugging Face order; the llama.cpp-order copies are not used again.
            self._cache.pop(f"blk.{layer}.attn_q.weight")
            self._cache.pop(f"blk.{layer}.attn_k.weight")
            self._qk_hf[layer] = (np.ascontiguousarray(wq), np.ascontiguousarray(wk))
        wq, wk = self._qk_hf[layer]
        return wq, wk, self.weight(f"blk.{layer}.attn_v.weight"), self.weight(f"blk.{layer}.attn_output.weight")

    def _bias(self, layer: int, kind: str) -> np.ndarray | float:
        """The q/k/v bias of a layer in Hugging Face order, or 0.0 when the file has none."""
        name = f"blk.{layer}.attn_{kind}.bias"
        if name not in self._tensors:
            return 0.0
        b = self.weight(name)
        if self.config.arch == "llama" and kind in ("q", "k"):
            b = unpermute_rows(b, self.config.num_q_heads if kind == "q" else self.config.num_kv_heads)
        return b

    def tokenizer(self):
        """A `tokenizers.Tokenizer` rebuilt from the GGUF vocabulary (byte-level BPE only)."""
        try:
            from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
        except ImportError as exc:
            raise ImportError("tokenizing needs the `tokenizers` package: "
                              "pip install -r tools/requirements-sample.txt") from exc
        r = self._reader
        kind = _field(r, "tokenizer.ggml.model")
        pre = _field(r, "tokenizer.ggml.pre", "default")
        if kind != "gpt2":
            raise UnsupportedModelError(f"{self.path}: tokenizer model {kind!r} is not supported (only "
                                        f"byte-level BPE, 'gpt2')")
        tokens = list(_field(r, "tokenizer.ggml.tokens"))
        merges = [tuple(m.split(" ", 1)) for m in _field(r, "tokenizer.ggml.merges")]
        tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        # llama.cpp's pre-tokenizer table: these split every digit on its own before the GPT-2 regex.
        if pre in ("smollm", "starcoder", "refact", "command-r", "codeshell"):
            tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                         byte_level])
        elif pre in ("gpt-2", "default", "mpt", "olmo"):
            tok.pre_tokenizer = byte_level
        else:
            raise UnsupportedModelError(f"{self.path}: pre-tokenizer {pre!r} is not supported")
        tok.decoder = decoders.ByteLevel()
        types = _field(r, "tokenizer.ggml.token_type") or []
        control = [tokens[i] for i, t in enumerate(types) if int(t) == 3]  # 3 = control token
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
        return tok

    def encode(self, text: str) -> list[int]:
        """Token ids of text, with BOS first when the model's metadata asks for it."""
        if not hasattr(self, "_tok"):
            self._tok = self.tokenizer()
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if self.config.add_bos and self.config.bos_id is not None:
            ids = [self.config.bos_id] + ids
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        if not hasattr(self, "_tok"):
            self._tok = self.tokenizer()
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def forward(self, tokens: np.ndarray, capture_layers: Iterable[int] = (), capture_queries: bool = False,
                key_rope: str = "pre", want_nll: bool = False, want_last_logits: bool = False,
                logits_chunk: int = 512, want_logits: bool = False) -> ForwardResult:
        """tokens: [T] ids of one sequence (positions 0..T-1) -> captured activations per layer.

        key_rope "pre": keys/queries as projected (Hugging Face layout); "post": after the rotary
        embedding. Values are the same either way.
        """
        c = self.config
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.size == 0:
            raise ValueError("tokens must be a non-empty 1-D array")
        if tokens.min() < 0 or tokens.max() >= c.vocab_size:
            raise ValueError(f"token ids must be in 0..{c.vocab_size - 1}")
        capture = set(capture_layers)
        t = tokens.size
        positions = np.arange(t)
        embed = self.weight("token_embd.weight")  # [vocab, hidden]
        x = embed[tokens].astype(np.float32)
        captures = {}
        for layer in range(c.num_layers):
            wq, wk, wv, wo = self._attn_weights(layer)
            h = rms_norm(x, self.weight(f"blk.{layer}.attn_norm.weight"), c.rms_eps)
            q = (h @ wq.T + self._bias(layer, "q")).reshape(t, c.num_q_heads, c.head_dim)
            k = (h @ wk.T + self._bias(layer, "k")).reshape(t, c.num_kv_heads, c.head_dim)
            v = (h @ wv.T + self._bias(layer, "v")).reshape(t, c.num_kv_heads, c.head_dim)
            q_rot = apply_rope(q, positions, inv_freq=c.rope_inv_freq)
            k_rot = apply_rope(k, positions, inv_freq=c.rope_inv_freq)
            if layer in capture:
                captured = {"keys": k if key_rope == "pre" else k_rot, "values": v}
                if capture_queries:
                    captured["queries"] = q if key_rope == "pre" else q_rot
                captures[layer] = captured
            x = x + causal_attention(q_rot, k_rot, v) @ wo.T
            h = rms_norm(x, self.weight(f"blk.{layer}.ffn_norm.weight"), c.rms_eps)
            gate = h @ self.weight(f"blk.{layer}.ffn_gate.weight").T
            up = h @ self.weight(f"blk.{layer}.ffn_up.weight").T
            x = x + (silu(gate) * up) @ self.weight(f"blk.{layer}.ffn_down.weight").T
        if not (want_nll or want_last_logits or want_logits):
            return ForwardResult(captures, None, None)
        h = rms_norm(x, self.weight("output_norm.weight"), c.rms_eps)
        head = self.weight("output.weight") if "output.weight" in self._tensors else embed  # tied
        nll = np.empty(t - 1, dtype=np.float64)
        last_logits = None
        all_logits = np.empty((t, c.vocab_size), dtype=np.float32) if want_logits else None
        for begin in range(0, t, logits_chunk):
            logits32 = h[begin:begin + logits_chunk] @ head.T
            if all_logits is not None:
                all_logits[begin:begin + logits_chunk] = logits32
            logits = logits32.astype(np.float64)
            m = logits.max(axis=1, keepdims=True)
            logz = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
            rows = np.arange(logits.shape[0])
            targets = begin + rows + 1
            ok = targets < t
            nll[targets[ok] - 1] = logz[ok] - logits[rows[ok], tokens[targets[ok]]]
            if begin + logits_chunk >= t:
                last_logits = logits[-1].astype(np.float32)
        return ForwardResult(captures, nll if want_nll else None, last_logits, all_logits)
