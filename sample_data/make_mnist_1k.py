"""Regenerate sample_data/mnist-1k/ from shared/data/mnist-5k (how the shipped files were made).

Takes the first 100 digits of each class (mnist-5k holds 500 per class, sorted by label, so these are
source indices 0-99, 500-599, ..., 4500-4599) and writes them as real IDX files (magic 2051 / 2049,
big-endian dimensions), gzipped with a zero timestamp so the bytes are reproducible.

    python sample_data/make_mnist_1k.py ../shared/data/mnist-5k sample_data/mnist-1k
"""
import gzip
import struct
import sys
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes())


def main(src: str, dst: str, per_class: int = 100) -> None:
    src_p, dst_p = Path(src), Path(dst)
    images = read_idx(src_p / "train-images-idx3-ubyte.gz")
    labels = read_idx(src_p / "train-labels-idx1-ubyte.gz")
    idx = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(10)])
    dst_p.mkdir(parents=True, exist_ok=True)
    write_idx(dst_p / "train-images-idx3-ubyte.gz", images[idx], 2051)
    write_idx(dst_p / "train-labels-idx1-ubyte.gz", labels[idx], 2049)
    print(f"wrote {idx.size} digits to {dst_p}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
