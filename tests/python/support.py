"""Shared by the Python tests: where things are, a small model, and a
safetensors reader (json header + raw little-endian data) for the golden
files."""

import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
DATA = os.path.join(TOP, "tests", "data")
# Run from the source tree without installing anything: the package lives
# in examples/python (CTest also sets PYTHONPATH).
sys.path.insert(0, os.path.join(TOP, "examples", "python"))

import libat  # noqa: E402

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + lo:base + hi],
                                  dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def small_model(**kw):
    params = dict(layers=2, d_model=32, heads=4, d_ff=64, dropout=0.0, attn_dropout=0.0,
                  seed=7)
    params.update(kw)
    return libat.Model(**params)


def copy_batch(rng, batch=8, length=10, vocab=11):
    y = rng.integers(1, vocab, size=(batch, length)).astype(np.int32)
    y[:, 0] = 1
    return y


def header_version():
    """(major, minor, patch) as include/at.h defines them."""
    parts = {}
    with open(os.path.join(TOP, "include", "at.h")) as f:
        for line in f:
            for p in ("MAJOR", "MINOR", "PATCH"):
                key = "#define AT_VERSION_%s " % p
                if line.startswith(key):
                    parts[p] = int(line[len(key):].split()[0])
    return parts["MAJOR"], parts["MINOR"], parts["PATCH"]
