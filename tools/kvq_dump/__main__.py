"""Command line: python -m kvq_dump {gguf,hf} --text FILE... --out DUMP.h5 [options].

Run with tools/ on the module path, e.g. `PYTHONPATH=tools python3 -m kvq_dump gguf --help`.
See docs/dumping.md for examples.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from . import __version__
from .driver import dump_sequences, tail_positions
from .text import make_sequences, parse_layers, tokenize_files
from .writer import DTYPES, DumpHeader, DumpWriteError

SANITY_PROMPTS = ("The capital of France is", "One, two, three, four,",
                  "The quick brown fox jumps over the lazy")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", nargs="+", required=True, metavar="FILE",
                        help="UTF-8 text files; each is tokenized on its own")
    parser.add_argument("--out", required=True, help="dump file to write (HDF5, format v1)")
    parser.add_argument("--layers", default="all",
                        help='layers to store: "all", "0,4,8" or a slice "0:30:4" (default: all)')
    parser.add_argument("--seq-len", type=int, default=2048,
                        help="cut files into independent sequences of at most this many tokens (default 2048)")
    parser.add_argument("--max-tokens", type=int, default=None, help="cap on the total tokens T")
    parser.add_argument("--max-file-tokens", type=int, default=None,
                        help="use only the first N tokens of each file")
    parser.add_argument("--dtype", choices=DTYPES, default="float16", help="storage type (default float16)")
    parser.add_argument("--key-rope", choices=("pre", "post"), default="pre",
                        help="keys (and queries) before (default) or after the rotary embedding")
    parser.add_argument("--queries", action="store_true", help="also store queries ([T, H_q, D])")
    parser.add_argument("--query-tail", type=float, default=None, metavar="F",
                        help="store queries only for the last round(F x length) tokens of every sequence "
                             "(the held-out tail KVQ Studio evaluates with --held-out F; /query_positions); "
                             "implies --queries")
    parser.add_argument("--compression", type=int, default=4, choices=range(10), metavar="0-9",
                        help="gzip level (default 4; 0 = none)")
    parser.add_argument("--model-name", default=None, help='the "model" attribute (default: from the model)')
    parser.add_argument("--source-note", default="", help='appended to the "source" attribute')
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def _source(backend: str, model_file: str, texts, note: str) -> str:
    parts = [f"kvq_dump {__version__} ({backend})", f"model {model_file}",
             "text " + ", ".join(os.path.basename(t) for t in texts)]
    if note:
        parts.append(note)
    return "; ".join(parts)


def _run_gguf(args: argparse.Namespace) -> int:
    from .gguf_llama import GgufLlama

    model = GgufLlama(args.gguf)
    c = model.config
    layers = parse_layers(args.layers, c.num_layers)
    sequences = make_sequences(tokenize_files(args.text, model.encode), args.seq_len, args.max_tokens,
                               args.max_file_tokens)
    # Keys and queries are captured in the Hugging Face channel layout (the row permutation is undone).
    header = DumpHeader(model=args.model_name or c.name, num_layers=c.num_layers, num_kv_heads=c.num_kv_heads,
                        head_dim=c.head_dim, key_rope=args.key_rope, num_q_heads=c.num_q_heads,
                        rope_theta=c.rope_theta, rope_dim=c.rope_dim, rope_layout="half",
                        rope_inv_freq=c.rope_inv_freq,
                        source=_source("numpy forward pass of a GGUF model", os.path.basename(args.gguf),
                                       args.text, args.source_note))
    nll = []

    queries = args.queries or args.query_tail is not None
    positions = None if args.query_tail is None else tail_positions(sequences, args.query_tail)

    def run(ids: np.ndarray):
        result = model.forward(ids, layers, capture_queries=queries, key_rope=args.key_rope,
                               want_nll=args.report)
        if result.nll is not None:
            nll.append(result.nll)
        return result.captures

    total = dump_sequences(args.out, header, layers, sequences, run, dtype=args.dtype,
                           with_queries=queries, compression=args.compression,
                           show_progress=not args.no_progress, query_positions=positions)
    print(f"wrote {args.out}: {total} tokens in {len(sequences)} sequences, layers {layers}, "
          f"{os.path.getsize(args.out) / 1e6:.2f} MB")
    if args.report:
        all_nll = np.concatenate(nll)
        print(f"perplexity over the dumped text: {np.exp(all_nll.mean()):.3f} "
              f"({all_nll.size} predicted tokens; per sequence: "
              f"{', '.join(f'{np.exp(n.mean()):.2f}' for n in nll)})")
        for prompt in SANITY_PROMPTS:
            logits = model.forward(np.array(model.encode(prompt)), want_last_logits=True).last_logits
            top = np.argsort(-logits)[:5]
            shifted = logits - logits.max()
            probs = np.exp(shifted) / np.exp(shifted).sum()
            print(f"  {prompt!r} -> " + ", ".join(f"{model.decode([int(i)])!r} {probs[i]:.2f}" for i in top))
    return 0


def _run_hf(args: argparse.Namespace) -> int:
    from .hf_dump import HfDumper, attention_modules, encode_text, load_model

    model, tokenizer = load_model(args.model, device=args.device, torch_dtype=args.torch_dtype,
                                  revision=args.revision, trust_remote_code=args.trust_remote_code,
                                  gguf_file=args.gguf_file)
    dumper_layers = parse_layers(args.layers, len(attention_modules(model)))
    queries = args.queries or args.query_tail is not None
    dumper = HfDumper(model, dumper_layers, key_rope=args.key_rope, with_queries=queries)
    info = dumper.info
    sequences = make_sequences(tokenize_files(args.text, lambda t: encode_text(tokenizer, t)), args.seq_len,
                               args.max_tokens, args.max_file_tokens)
    header = DumpHeader(model=args.model_name or args.model, num_layers=info.num_layers,
                        num_kv_heads=info.num_kv_heads, head_dim=info.head_dim, key_rope=args.key_rope,
                        num_q_heads=info.num_q_heads, rope_theta=info.rope_theta, rope_dim=info.rope_dim,
                        rope_layout="half" if info.rope_inv_freq is not None else None,
                        rope_inv_freq=info.rope_inv_freq, attention_scale=info.attention_scale,
                        source=_source(f"transformers, {args.torch_dtype} on {args.device}", args.model,
                                       args.text, args.source_note))
    positions = None if args.query_tail is None else tail_positions(sequences, args.query_tail)
    total = dump_sequences(args.out, header, dumper_layers, sequences, dumper.run_sequence, dtype=args.dtype,
                           with_queries=queries, compression=args.compression,
                           show_progress=not args.no_progress, query_positions=positions)
    print(f"wrote {args.out}: {total} tokens in {len(sequences)} sequences, layers {dumper_layers}, "
          f"{os.path.getsize(args.out) / 1e6:.2f} MB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kvq_dump",
                                     description="Dump KV-cache activations of a language model (KV dump v1).")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="backend", required=True)

    g = sub.add_parser("gguf", help="Llama-architecture GGUF file, numpy forward pass (no PyTorch)")
    g.add_argument("--gguf", required=True, help="model file (.gguf)")
    g.add_argument("--report", action="store_true",
                   help="also print the perplexity of the text and top next-token predictions (sanity check)")
    _common(g)

    h = sub.add_parser("hf", help="Hugging Face transformers causal LM (needs torch + transformers)")
    h.add_argument("--model", required=True, help="hub id (e.g. HuggingFaceTB/SmolLM2-135M) or local directory")
    h.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    h.add_argument("--device", default="cpu", help='torch device, e.g. "cpu", "cuda" (default cpu)')
    h.add_argument("--torch-dtype", choices=("float32", "bfloat16", "float16", "auto"), default="float32",
                   help="dtype the model runs in (default float32)")
    h.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code")
    h.add_argument("--gguf-file", default=None,
                   help="load this GGUF file from --model (a directory or hub repo); transformers dequantizes it")
    _common(h)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run_gguf(args) if args.backend == "gguf" else _run_hf(args)
    except (DumpWriteError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        print(f"kvq_dump: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kvq_dump: error: {exc.filename or ''} {exc.strerror or exc}".strip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
