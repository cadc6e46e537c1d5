#!/usr/bin/env python3
"""Writes dequant_fixtures.json beside this script: for each common GGUF tensor type, seeded raw block bytes and
gguf-py's dequantisation of them as float32 bit patterns. DequantFixtureTests.swift checks our kernels against it.

Run (in a venv outside the repo):
    python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf==0.19.0 numpy
    /tmp/venv-gguf/bin/python Tests/CheckpointsTests/Fixtures/make_dequant_fixtures.py

The raw bytes are random except the f16 scale fields (d, dmin, m), which are set to random finite f16 values with
magnitude in [1e-3, 1e-1] and either sign, so no NaN or Inf appears. F32/F16/BF16 data are random finite values
(including signed zeros and, for F16, subnormals) rather than random bytes, for the same reason.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

SEED = 20250611
# Byte offsets of the f16 scale fields inside one block (ggml's block_* structs).
SCALE_OFFSETS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82],   # scales[16], qs[64], d, dmin
    "Q3_K": [108],      # hmask[32], qs[64], scales[12], d
    "Q4_K": [0, 2], "Q5_K": [0, 2],
    "Q6_K": [208],      # ql[128], qh[64], scales[16], d
    "IQ4_NL": [0], "IQ4_XS": [0],
}
# Shape of each tensor in numpy order (rows, elements per row). An odd mix of block counts; Q3_K has two rows.
SHAPES = {
    "F32": (1, 37), "F16": (1, 45), "BF16": (1, 29),
    "Q4_0": (1, 32 * 5), "Q4_1": (1, 32 * 3), "Q5_0": (1, 32 * 7), "Q5_1": (1, 32 * 5), "Q8_0": (1, 32 * 3),
    "Q2_K": (1, 256 * 3), "Q3_K": (2, 256 * 2), "Q4_K": (1, 256 * 3), "Q5_K": (1, 256 * 3),
    "Q6_K": (1, 256 * 3), "IQ4_NL": (1, 32 * 5), "IQ4_XS": (1, 256 * 3),
}


def scale_halves(rng, n):
    """n random f16 values, magnitude log-uniform in [1e-3, 1e-1], random sign."""
    mag = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), size=n))
    sign = rng.choice([-1.0, 1.0], size=n)
    return (mag * sign).astype(np.float16)


def raw_bytes(rng, name, shape):
    rows, cols = shape
    n = rows * cols
    if name == "F32":
        v = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 4, size=n)).astype(np.float32)
        v[:2] = [0.0, -0.0]
        return v.view(np.uint8).reshape(rows, -1)
    if name == "F16":
        bits = rng.integers(0, 0x7c00, size=n, dtype=np.uint16)        # finite, subnormals included
        bits |= rng.integers(0, 2, size=n, dtype=np.uint16) << 15
        bits[:4] = [0x0000, 0x8000, 0x0001, 0x83ff]                       # +-0 and two subnormals
        return bits.view(np.uint8).reshape(rows, -1)
    if name == "BF16":
        v = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 4, size=n)).astype(np.float32)
        v[:2] = [0.0, -0.0]
        return (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(rows, -1)
    qtype = T[name]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = n // block_size
    b = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    for off in SCALE_OFFSETS[name]:
        b[:, off:off + 2] = scale_halves(rng, blocks).view(np.uint8).reshape(blocks, 2)
    return b.reshape(rows, -1)


def main():
    rng = np.random.default_rng(SEED)
    entries = []
    for name, shape in SHAPES.items():
        data = raw_bytes(rng, name, shape)
        values = np.asarray(dequantize(data, T[name]), dtype=np.float32)
        assert values.shape == shape, (name, values.shape, shape)
        assert np.isfinite(values).all(), name
        entries.append({
            "type": name,
            "shape": list(shape),
            "bytes": data.tobytes().hex(),
            "expected_bits": [int(x) for x in values.reshape(-1).view(np.uint32)],
        })
    out = {
        "generator": "Tests/CheckpointsTests/Fixtures/make_dequant_fixtures.py",
        "command": "python Tests/CheckpointsTests/Fixtures/make_dequant_fixtures.py (gguf==0.19.0, numpy)",
        "gguf_version": getattr(gguf, "__version__", None) or _dist_version(),
        "numpy_version": np.__version__,
        "seed": SEED,
        "note": "shape is numpy order (rows, elements per row); bytes are the raw ggml blocks, hex; "
                "expected_bits are gguf.quants.dequantize's float32 results as uint32 bit patterns, row-major",
        "tensors": entries,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant_fixtures.json")
    # One line per tensor keeps the file diffable without spreading thousands of numbers over their own lines.
    tensors = out.pop("tensors")
    with open(path, "w") as f:
        f.write("{\n")
        for key, value in out.items():
            f.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
        f.write(' "tensors": [\n')
        f.write(",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in tensors))
        f.write("\n ]\n}\n")
    print(f"wrote {path}", file=sys.stderr)


def _dist_version():
    from importlib.metadata import version
    return version("gguf")


if __name__ == "__main__":
    main()
