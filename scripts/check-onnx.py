#!/usr/bin/env python3
"""Checks an exported ONNX graph with onnx.checker and runs it in ONNX Runtime on an IDX test set
(Fashion-MNIST or MNIST, 28x28 zero-padded to 32x32 as mognet reads them), printing its accuracy
and, given the engine's classes (`mognet-infer eval --classes FILE`), how many images differ. It
also lists the operators ONNX Runtime runs after its graph optimizations (a `qdq` graph's
convolutions should have become `QLinearConv`).

    pip install onnx onnxruntime numpy
    target/debug/mognet-infer export-onnx --model M.mognet --out M.onnx
    target/debug/mognet-infer eval --model M.mognet --dataset fashion-mnist \\
        --data-dir datasets/fashion-mnist --classes M.classes
    scripts/check-onnx.py M.onnx datasets/fashion-mnist M.classes
"""
import collections
import gzip
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def idx(path):
    """The bytes of an IDX file, gzipped or not."""
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz").read()
    return open(path, "rb").read()


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    graph, data = sys.argv[1], sys.argv[2]
    onnx.checker.check_model(onnx.load(graph), full_check=True)
    images = np.frombuffer(idx(f"{data}/t10k-images-idx3-ubyte")[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer(idx(f"{data}/t10k-labels-idx1-ubyte")[8:], np.uint8)
    x = np.zeros((len(images), 1, 32, 32), np.float32)
    x[:, 0, 2:30, 2:30] = images
    options = ort.SessionOptions()
    optimized = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
    options.optimized_model_filepath = optimized
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(optimized).graph.node)
    convs = {op: n for op, n in sorted(ops.items()) if "Conv" in op}
    print(f"onnxruntime runs the convolutions as: {convs}")
    classes = np.concatenate(
        [session.run(["class"], {"image": x[i : i + 250]})[0] for i in range(0, len(x), 250)]
    )
    correct = int((classes == labels).sum())
    print(f"onnx.checker: ok; onnxruntime {ort.__version__}")
    print(f"accuracy: {correct / len(labels):.4f} ({correct}/{len(labels)})")
    if len(sys.argv) == 4:
        engine = np.array([int(line) for line in open(sys.argv[3])])
        if len(engine) != len(classes):
            sys.exit(f"{sys.argv[3]} has {len(engine)} classes for {len(classes)} images")
        differ = int((engine != classes).sum())
        print(f"classes differing from the engine: {differ} of {len(classes)}")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
