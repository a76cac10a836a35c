"""Dump K/V activations of a Hugging Face transformers causal LM (needs torch + transformers).

Keys are captured where the paper quantizes them:
  * key_rope="pre" (default): output of each attention's `k_proj` (or of `k_norm` when the model
    normalizes keys before the rotary embedding, e.g. Qwen3, Gemma 3), before RoPE;
  * key_rope="post": the keys the model stores in its KV cache (`past_key_values`), after RoPE.
Values are the output of `v_proj` (RoPE never touches them). Queries (optional) come from `q_proj`
(or `q_norm`); for "post" they are rotated with the standard RoPE formulas, after checking on the
same layer's keys that those formulas reproduce what the model's cache holds.

GQA models are handled naturally: keys/values have H_kv heads, queries H_q.
torch and transformers are imported lazily so that the rest of kvq_dump works without them.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from .rope import apply_rope


class ModelLoadError(RuntimeError):
    """The model or tokenizer could not be found or loaded."""


class UnsupportedArchitectureError(ValueError):
    """The model's attention modules do not expose what the dumper hooks."""


@dataclasses.dataclass
class HfModelInfo:
    model_type: str
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: Optional[float]
    rope_dim: Optional[int]
    rope_scaled: bool
    rope_inv_freq: Optional[np.ndarray] = None  # [rope_dim/2] float64 from the model's rotary module
    attention_scale: Optional[float] = None  # softmax scale, when it is not 1/sqrt(head_dim)


def _import_torch():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError("the Hugging Face dumper needs PyTorch and transformers: "
                          "pip install -r tools/requirements-hf.txt") from exc
    return torch, transformers


def load_model(name: str, device: str = "cpu", torch_dtype: str = "float32", revision: Optional[str] = None,
               trust_remote_code: bool = False, gguf_file: Optional[str] = None):
    """(model, tokenizer) for a hub id or a local directory; ModelLoadError when missing.

    gguf_file: a GGUF file name inside `name` (transformers dequantizes it; needs `gguf`)."""
    torch, transformers = _import_torch()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
             "auto": "auto"}[torch_dtype]
    # transformers 4.56 renamed from_pretrained's torch_dtype to dtype (older versions ignore dtype).
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    kwargs = {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, revision=revision, gguf_file=gguf_file,
                                                               trust_remote_code=trust_remote_code)
        model = transformers.AutoModelForCausalLM.from_pretrained(name, revision=revision, **kwargs,
                                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{name}: cannot load the model or its tokenizer ({exc}). Check the hub id or "
                             f"local path, network access (or HF_HUB_OFFLINE with a filled cache), and "
                             f"whether the model needs --trust-remote-code.") from exc
    model.eval().to(device)
    return model, tokenizer


def _config_value(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _rotary_module(model):
    """The model's rotary embedding module (shared, or the first layer's in older transformers), or None."""
    for path in ("model.rotary_emb", "model.language_model.rotary_emb", "model.model.rotary_emb",
                 "model.layers.0.self_attn.rotary_emb"):
        obj = model
        for part in path.split("."):
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and getattr(obj, "inv_freq", None) is not None:
            return obj
    return None


def _rotary_details(model, head_dim: int, rope_dim: Optional[int]):
    """(inv_freq [rope_dim/2] float64 or None, attention_scale or None) as the model computes attention.

    inv_freq is the rotary module's own buffer (scaled RoPE such as Llama 3.1's or YaRN included).
    attention_scale is the attention module's softmax scale times the rotary module's attention_scaling
    squared (YaRN's mscale multiplies cos and sin, so both q and k), written only when it is not
    1/sqrt(head_dim)."""
    module = _rotary_module(model)
    if module is None:
        return None, None
    inv_freq = module.inv_freq.detach().double().cpu().numpy()
    mscale = float(getattr(module, "attention_scaling", 1.0) or 1.0)
    attn = attention_modules(model)[0]
    scale = float(getattr(attn, "scaling", head_dim ** -0.5))
    if mscale != 1.0:
        if rope_dim is not None and rope_dim != head_dim:
            raise UnsupportedArchitectureError(
                "the rotary embedding scales cos/sin (attention_scaling) on a partial rotary embedding: a single "
                "attention_scale cannot describe it")
        scale *= mscale * mscale
    return inv_freq, (None if abs(scale * np.sqrt(head_dim) - 1.0) < 1e-9 else scale)


def model_info(model) -> HfModelInfo:
    """Head counts and RoPE parameters from the model's config and its rotary module."""
    config = model.config
    text_config = getattr(config, "text_config", None) or config  # multimodal wrappers
    heads = int(_config_value(text_config, "num_attention_heads"))
    hidden = int(_config_value(text_config, "hidden_size"))
    head_dim = int(_config_value(text_config, "head_dim", default=hidden // heads))
    rope_params = _config_value(text_config, "rope_parameters", default={}) or {}
    rope_scaling = _config_value(text_config, "rope_scaling", default=None)
    theta = _config_value(text_config, "rope_theta", default=rope_params.get("rope_theta"))
    partial = float(_config_value(text_config, "partial_rotary_factor",
                                  default=rope_params.get("partial_rotary_factor", 1.0)))
    scaled_type = (rope_scaling or {}).get("rope_type") or (rope_scaling or {}).get("type") or \
        rope_params.get("rope_type", "default")
    rope_dim = int(round(head_dim * partial)) if theta is not None else None
    inv_freq, attention_scale = _rotary_details(model, head_dim, rope_dim)
    if inv_freq is not None and rope_dim is None:
        rope_dim = 2 * len(inv_freq)
    return HfModelInfo(
        model_type=str(getattr(config, "model_type", type(model).__name__)),
        num_layers=int(_config_value(text_config, "num_hidden_layers")),
        num_q_heads=heads,
        num_kv_heads=int(_config_value(text_config, "num_key_value_heads", default=heads)),
        head_dim=head_dim,
        rope_theta=None if theta is None else float(theta),
        rope_dim=rope_dim,
        rope_scaled=scaled_type not in (None, "default"),
        rope_inv_freq=inv_freq,
        attention_scale=attention_scale,
    )


def attention_modules(model) -> list:
    """The self-attention module of every decoder layer; UnsupportedArchitectureError otherwise."""
    model_type = getattr(model.config, "model_type", type(model).__name__)
    layers = None
    for path in ("model.layers", "model.language_model.layers", "model.model.layers", "transformer.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            layers = obj
            break
    if layers is None:
        raise UnsupportedArchitectureError(f"{model_type}: cannot find the decoder layers (looked for "
                                           f"model.layers); supported: Llama-style models (Llama, Mistral, "
                                           f"Qwen2/3, Gemma, SmolLM, ...)")
    modules = []
    for index, layer in enumerate(layers):
        attn = getattr(layer, "self_attn", None)
        if attn is None or not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj")):
            raise UnsupportedArchitectureError(
                f"{model_type}: layer {index} has no self_attn with separate q_proj/k_proj/v_proj "
                f"(fused projections such as GPT-2's c_attn or Phi-3's qkv_proj are not supported)")
        modules.append(attn)
    return modules


def _cache_layer(cache, layer: int):
    """(keys, values) of one layer from past_key_values, each [B, H_kv, T, D], across versions."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        entry = cache.layers[layer]
        return entry.keys, entry.values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[layer], cache.value_cache[layer]
    return cache[layer][0], cache[layer][1]  # legacy tuple of tuples


class HfDumper:
    """Runs one sequence at a time and returns {layer: {kind: [T, H, D] float32}}."""

    def __init__(self, model, layers: Sequence[int], key_rope: str = "pre", with_queries: bool = False):
        self.torch, _ = _import_torch()
        if key_rope not in ("pre", "post"):
            raise ValueError(f'key_rope must be "pre" or "post", got {key_rope!r}')
        self.model = model
        self.info = model_info(model)
        self.layers = list(layers)
        self.key_rope = key_rope
        self.with_queries = with_queries
        if key_rope == "post" and with_queries and self.info.rope_inv_freq is None:
            raise UnsupportedArchitectureError(
                f"{self.info.model_type}: post-RoPE queries need the model's rotary frequencies (no rotary "
                f"module with inv_freq found); dump with --key-rope pre instead")
        self._modules = attention_modules(model)
        bad = [layer for layer in self.layers if not 0 <= layer < len(self._modules)]
        if bad:
            raise ValueError(f"layers {bad} do not exist (the model has {len(self._modules)})")
        self._captured: dict = {}

    def _hook(self, layer: int, kind: str, heads: int):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            # [1, T, H*D] for projections, [1, T, H, D] for per-head norms: both are T-major.
            array = out.detach()[0].float().cpu().numpy()
            self._captured.setdefault(layer, {})[kind] = array.reshape(array.shape[0], heads,
                                                                        self.info.head_dim)
        return hook

    def run_sequence(self, ids: np.ndarray) -> dict:
        """ids: [T] token ids (one sequence, positions 0..T-1) -> {layer: {kind: [T, H, D]}}."""
        torch = self.torch
        info = self.info
        handles = []
        try:
            for layer in self.layers:
                attn = self._modules[layer]
                k_src = attn.k_norm if getattr(attn, "k_norm", None) is not None else attn.k_proj
                q_src = attn.q_norm if getattr(attn, "q_norm", None) is not None else attn.q_proj
                handles.append(k_src.register_forward_hook(self._hook(layer, "keys", info.num_kv_heads)))
                handles.append(attn.v_proj.register_forward_hook(self._hook(layer, "values", info.num_kv_heads)))
                if self.with_queries:
                    handles.append(q_src.register_forward_hook(self._hook(layer, "queries", info.num_q_heads)))
            self._captured = {}
            device = next(self.model.parameters()).device
            input_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=device)[None, :]
            with torch.no_grad():
                output = self.model(input_ids=input_ids, use_cache=self.key_rope == "post")
        finally:
            for handle in handles:
                handle.remove()
        captured = self._captured
        self._captured = {}
        if self.key_rope == "post":
            self._apply_post_rope(captured, output.past_key_values, len(ids))
        return captured

    def _apply_post_rope(self, captured: dict, cache, num_tokens: int) -> None:
        info = self.info
        positions = np.arange(num_tokens)
        for layer in self.layers:
            keys, _values = _cache_layer(cache, layer)
            post = keys.detach()[0].float().cpu().numpy().transpose(1, 0, 2)  # [T, H_kv, D]
            if post.shape[0] != num_tokens:
                raise UnsupportedArchitectureError(
                    f"{info.model_type}: layer {layer}'s cache holds {post.shape[0]} of {num_tokens} tokens "
                    f"(sliding-window attention?); use a shorter --seq-len or --key-rope pre")
            if self.with_queries:
                # Rotate queries ourselves, after checking our formulas reproduce the cached keys.
                ours = apply_rope(captured[layer]["keys"], positions, inv_freq=info.rope_inv_freq)
                err = np.linalg.norm(ours - post) / max(np.linalg.norm(post), 1e-30)
                if err > 1e-2:
                    raise UnsupportedArchitectureError(
                        f"{info.model_type}: the model's rotary embedding differs from the standard one "
                        f"(relative difference {err:.3g} on layer {layer}); dump queries with --key-rope pre")
                captured[layer]["queries"] = apply_rope(captured[layer]["queries"], positions,
                                                        inv_freq=info.rope_inv_freq)
            captured[layer]["keys"] = post


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of text with the tokenizer's own special tokens (e.g. BOS) added."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])
