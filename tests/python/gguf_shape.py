"""What the tests that write a tiny random GGUF model share (test_dumper.py, test_model_pass.py)."""


def add_shape(w, name, cfg):
    """Writes the model's name and shape to the GGUFWriter w, in this order: layers, hidden,
    ffn, query heads hq, key/value heads hkv and the RoPE base theta (keys of cfg)."""
    w.add_name(name)
    w.add_block_count(cfg["layers"])
    w.add_embedding_length(cfg["hidden"])
    w.add_feed_forward_length(cfg["ffn"])
    w.add_head_count(cfg["hq"])
    w.add_head_count_kv(cfg["hkv"])
    w.add_rope_freq_base(cfg["theta"])
