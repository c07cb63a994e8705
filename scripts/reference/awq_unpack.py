"""Unpacks an AWQ "gemm" checkpoint written by `stylevn quantize` from the published
format alone (casper-hansen/AutoAWQ, awq/utils/packing_utils.py: unpack_awq,
reverse_awq_order, dequantize_gemm), independently of stylevn's Rust code, and
records what every quantized projection must dequantize to.

    qweight int32 [in, out/8], qzeros int32 [in/G, out/8], scales fp16 [in/G, out]
    nibble i (bits 4i..4i+4) of a word -> column 8c + i, then columns reordered with
    AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
    w[in, out] = (q - z) * s, computed here in float32 (exact: |q - z| < 16, s has 11 bits)

Writes tests/golden/awq_unpack_tiny_qwen2.json: per projection, the sha256 of the
float32 little-endian bytes of W transposed to [out, in] (the layout stylevn's engine
uses), and a few values. Run by hand after regenerating tests/golden/tiny-qwen2-awq
(`STYLEVN_WRITE_GOLDEN=1 cargo test --release --test suite quant_awq::`):

    pip install numpy safetensors && python3 scripts/reference/awq_unpack.py
"""

import hashlib
import json
import os

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AWQ_DIR = os.path.join(ROOT, "tests", "golden", "tiny-qwen2-awq")
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def unpack(packed: np.ndarray) -> np.ndarray:
    """int32 [rows, cols/8] -> int [rows, cols] in logical column order."""
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    words = packed.astype(np.uint32)
    nibbles = (words[:, :, None] >> shifts[None, None, :]) & 0xF
    nibbles = nibbles.reshape(packed.shape[0], -1).astype(np.int64)
    order = np.arange(nibbles.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
    return nibbles[:, order]


def dequantize(qweight, qzeros, scales, group):
    q = unpack(qweight)
    z = np.repeat(unpack(qzeros), group, axis=0)
    s = np.repeat(scales.astype(np.float32), group, axis=0)
    return (q - z).astype(np.float32) * s


def main():
    with open(os.path.join(AWQ_DIR, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    assert qc["quant_method"] == "awq" and qc["version"] == "gemm" and qc["bits"] == 4 and qc["zero_point"]
    tensors = load_file(os.path.join(AWQ_DIR, "model.safetensors"))
    out = {}
    for name in sorted(k[: -len(".qweight")] for k in tensors if k.endswith(".qweight")):
        w = dequantize(tensors[name + ".qweight"], tensors[name + ".qzeros"], tensors[name + ".scales"],
                       qc["group_size"])
        w_out_in = np.ascontiguousarray(w.T).astype("<f4")
        out[name] = {"shape": list(w_out_in.shape), "sha256": hashlib.sha256(w_out_in.tobytes()).hexdigest(),
                     "first": [float(x) for x in w_out_in.reshape(-1)[:8]]}
    path = os.path.join(ROOT, "tests", "golden", "awq_unpack_tiny_qwen2.json")
    with open(path, "w") as f:
        json.dump({"generator": "scripts/reference/awq_unpack.py", "group_size": qc["group_size"],
                   "projections": out}, f, indent=1)
    print(f"{len(out)} projections unpacked -> {path}")


if __name__ == "__main__":
    main()
