"""Tiny deterministic models, rebuilt in Python exactly as src/model/tiny.rs builds them.

Every weight is a pure function of its name and element index (see tiny.rs):
    u(name, i) = (splitmix64(fnv1a64(name) + i) >> 40) / 2**24 * 2 - 1
    weight = 0.08 u, norm = 1 + 0.1 u, bias = 0.05 u, embedding = 0.5 u
"""

import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)

SPECS = [
    dict(name="tiny-qwen2", model_type="qwen2", tied=False, vocab=160, hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, rope_theta=1e6, eps=1e-6),
    dict(name="tiny-qwen2-tied", model_type="qwen2", tied=True, vocab=160, hidden=64, intermediate=96, layers=3, heads=8, kv_heads=2, rope_theta=1e4, eps=1e-6),
    dict(name="tiny-llama", model_type="llama", tied=True, vocab=160, hidden=48, intermediate=96, layers=2, heads=3, kv_heads=1, rope_theta=1e5, eps=1e-5),
    dict(name="tiny-llama-untied", model_type="llama", tied=False, vocab=160, hidden=64, intermediate=160, layers=2, heads=4, kv_heads=4, rope_theta=1e4, eps=1e-5),
]


def fnv1a64(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def uniform(name: str, count: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = np.uint64(fnv1a64(name)) + np.arange(count, dtype=np.uint64)
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    top = (z >> np.uint64(40)).astype(np.float32)
    return (top / np.float32(1 << 24)) * np.float32(2.0) - np.float32(1.0)


def config(spec: dict) -> dict:
    arch = "Qwen2ForCausalLM" if spec["model_type"] == "qwen2" else "LlamaForCausalLM"
    return {
        "architectures": [arch],
        "model_type": spec["model_type"],
        "vocab_size": spec["vocab"],
        "hidden_size": spec["hidden"],
        "intermediate_size": spec["intermediate"],
        "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "num_key_value_heads": spec["kv_heads"],
        "rms_norm_eps": spec["eps"],
        "rope_theta": spec["rope_theta"],
        "max_position_embeddings": 256,
        "tie_word_embeddings": spec["tied"],
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }


def tensors(spec: dict) -> dict:
    out = {}

    def put(name, shape, scale, shift):
        n = int(np.prod(shape))
        out[name] = (np.float32(shift) + np.float32(scale) * uniform(name, n)).reshape(shape)

    h, hd = spec["hidden"], spec["hidden"] // spec["heads"]
    put("model.embed_tokens.weight", (spec["vocab"], h), 0.5, 0.0)
    for layer in range(spec["layers"]):
        p = f"model.layers.{layer}"
        q, kv = spec["heads"] * hd, spec["kv_heads"] * hd
        for name, o, i in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", spec["intermediate"], h),
            ("mlp.up_proj", spec["intermediate"], h),
            ("mlp.down_proj", h, spec["intermediate"]),
        ]:
            put(f"{p}.{name}.weight", (o, i), 0.08, 0.0)
            if spec["model_type"] == "qwen2" and name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                put(f"{p}.{name}.bias", (o,), 0.05, 0.0)
        put(f"{p}.input_layernorm.weight", (h,), 0.1, 1.0)
        put(f"{p}.post_attention_layernorm.weight", (h,), 0.1, 1.0)
    put("model.norm.weight", (h,), 0.1, 1.0)
    if not spec["tied"]:
        put("lm_head.weight", (spec["vocab"], h), 0.08, 0.0)
    return out
