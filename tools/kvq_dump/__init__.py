"""kvq_dump: write KV-cache activations of language models as KV dump files (format v1).

Modules:
  writer      numpy arrays -> dump file (h5py only; no model needed)
  text        text files -> token sequences (splitting, limits)
  rope        the rotary embedding in the Hugging Face channel layout (numpy)
  gguf_llama  a numpy forward pass of Llama-architecture GGUF models (the bundled sample)
  hf_dump     hooks on a Hugging Face transformers causal LM (needs torch + transformers)
  driver      runs a backend over the sequences and streams the captures into the writer
  stats       per-layer statistics of a dump as a Markdown table (docs/real-data.md)

Command line: `python -m kvq_dump {gguf,hf} ...` with tools/ on PYTHONPATH (see docs/dumping.md).
"""

__version__ = "0.1.0"
