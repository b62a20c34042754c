#!/usr/bin/env python3
"""Writes the small seed inputs of the reader and engine fuzz targets into fuzz/corpus/.

The load target's seeds are real .mognet files: the shipped mognet-s and three tiny networks
(CA, PRNG and ternary PW2), each trained for one epoch on 64 sample images with
`mognet-train train --config C --epochs 1 --limit-train 64 ...` and exported with
`mognet-infer export`; they are committed as they are, not made here.
"""
import gzip
import os
import random
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(ROOT, "..", "datasets", "samples", "fashion-mnist")


def write(target, name, data):
    path = os.path.join(ROOT, "corpus", target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def idx_seeds():
    images = gzip.open(os.path.join(SAMPLE, "t10k-images-idx3-ubyte.gz")).read()
    labels = gzip.open(os.path.join(SAMPLE, "t10k-labels-idx1-ubyte.gz")).read()
    three = struct.pack(">IIII", 0x803, 3, 28, 28) + images[16 : 16 + 3 * 784]
    write("idx", "images-3", three)
    write("idx", "images-3.gz", gzip.compress(three, mtime=0))
    small = struct.pack(">IIII", 0x803, 2, 5, 7) + bytes(range(70))
    write("idx", "images-5x7", small)
    lab = struct.pack(">II", 0x801, 8) + labels[8:16]
    write("idx", "labels-8", lab)
    write("idx", "labels-8.gz", gzip.compress(lab, mtime=0))


def cifar_seeds():
    rng = random.Random(7)
    pixels = lambda: bytes(rng.randrange(256) for _ in range(3072))
    write("cifar", "cifar10-2", b"".join(bytes([c]) + pixels() for c in (3, 9)))
    write("cifar", "cifar100-2", b"".join(bytes([c, f]) + pixels() for c, f in ((4, 30), (19, 99))))


def png(width, height, color, depth, rows, palette=None):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette:
        out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_seeds():
    grey = [bytes((x * 9 + y * 3) % 256 for x in range(28)) for y in range(28)]
    write("png", "grey-28.png", png(28, 28, 0, 8, grey))
    rgb = [bytes((x + y + c * 80) % 256 for x in range(6) for c in range(3)) for y in range(5)]
    write("png", "rgb-6x5.png", png(6, 5, 2, 8, rgb))
    rgba = [bytes((x * 40 + c) % 256 for x in range(3) for c in range(4)) for _ in range(3)]
    write("png", "rgba-3.png", png(3, 3, 6, 8, rgba))
    grey16 = [bytes(v for x in range(4) for v in (x * 60, 7)) for _ in range(2)]
    write("png", "grey16-4x2.png", png(4, 2, 0, 16, grey16))
    pal = [bytes([0x1B]) for _ in range(2)]
    write("png", "palette-4x2.png", png(4, 2, 3, 2, pal, palette=bytes(range(12))))


def engine_seeds():
    rng = random.Random(11)
    for n in (16, 64, 256, 1024):
        write("engines", f"random-{n}", bytes(rng.randrange(256) for _ in range(n)))


if __name__ == "__main__":
    idx_seeds()
    cifar_seeds()
    png_seeds()
    engine_seeds()
