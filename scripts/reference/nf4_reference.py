"""NF4 goldens from the real bitsandbytes (CPU backend) for src/quant/nf4.rs.

    pip install bitsandbytes && python3 scripts/reference/nf4_reference.py

Inputs are rebuilt from the tiny-model formula (tiny_models.uniform), so only
bitsandbytes' outputs are stored: packed 4-bit codes, the double-quantized absmax
(uint8 codes, second-level absmax, offset), the signed dynamic 8-bit map, and the
dequantized weights. Writes tests/golden/nf4.json.
"""

import json
import os
import sys

import bitsandbytes
import bitsandbytes.functional as F
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import tiny_models  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# (name, rows, cols, scale): several 256-block groups of absmax, a partial last
# group, and a tensor whose size is not a multiple of 64.
CASES = [("nf4.a", 64, 320, 0.08), ("nf4.b", 48, 96, 2.5), ("nf4.c", 7, 55, 0.3)]


def main():
    out = {"generator": "scripts/reference/nf4_reference.py", "bitsandbytes": bitsandbytes.__version__, "cases": []}
    for name, rows, cols, scale in CASES:
        w = torch.from_numpy(tiny_models.uniform(name, rows * cols).reshape(rows, cols) * np.float32(scale))
        # A few outliers, as real weights have.
        w[0, 0] = 4.0 * scale
        w[rows // 2, cols // 3] = -3.0 * scale
        packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
        deq = F.dequantize_4bit(packed, state)
        # The published formula applied to bitsandbytes' own codes and absmax:
        # code[q] * (dequantize_blockwise(absmax_q) + offset), block by block.
        absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
        flat = packed.flatten().long()
        q = torch.stack([flat >> 4, flat & 15], 1).flatten()[: rows * cols]
        code = state.code.float()
        blocks = torch.arange(rows * cols) // 64
        formula = code[q] * absmax[blocks]
        # bitsandbytes' reference (torch "default" backend) blockwise quantizer applied to
        # the same absmax: clamp(x / blockmax) then nearest code by bucketize on midpoints.
        # Its CPU C kernel (used by quantize_4bit on CPU) searches approximately and
        # differs from it by one code step on a few values.
        raw = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)[1].absmax
        x = raw - raw.mean()
        code2 = state.state2.code
        ref_q = []
        for g in range(0, x.numel(), 256):
            blk = x[g:g + 256]
            scaled = torch.clamp(blk * (1.0 / blk.abs().max().clamp(min=1e-38)), -1, 1)
            ref_q += torch.bucketize(scaled, (code2[:-1] + code2[1:]) / 2).tolist()
        consistent = bool((formula.reshape(rows, cols) - deq).abs().max() < 1e-6)
        out["cases"].append({
            "name": name, "rows": rows, "cols": cols, "scale": scale,
            "outliers": [[0, 0, 4.0 * scale], [rows // 2, cols // 3, -3.0 * scale]],
            "packed_hex": packed.flatten().numpy().tobytes().hex(),
            "absmax_q": state.absmax.flatten().tolist(),
            "absmax_q_reference": ref_q,
            "absmax_offset": float(state.offset),
            "absmax2": state.state2.absmax.flatten().tolist(),
            "code2": state.state2.code.flatten().tolist(),
            "absmax_dequantized": absmax.tolist(),
            "formula_dequantized_f32_hex": formula.numpy().astype("<f4").tobytes().hex(),
            # bitsandbytes 0.50's CPU dequantize_4bit disagrees with its own formula on
            # some shapes (case nf4.b); where it agrees, it equals the formula above.
            "bnb_dequantize_consistent": consistent,
        })
        print(f"{name}: {rows}x{cols}, max |w - formula| = {float((formula.reshape(rows, cols) - w).abs().max()):.4g}, "
              f"bnb dequantize_4bit consistent with the formula: {consistent}")
    with open(os.path.join(ROOT, "tests", "golden", "nf4.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
