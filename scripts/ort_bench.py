#!/usr/bin/env python3
"""Times ONNX Runtime on a graph exported by `mognet-infer export-onnx`: the peer column of the
inference benchmark (scripts/bench-inference.sh).

    pip install onnxruntime numpy
    scripts/ort_bench.py GRAPH.onnx BATCH THREADS

Random pixels (0-255 as float) of the graph's input shape; 3 warm-up calls, then 7 rounds of 5
calls; prints the median images/s of the rounds and the convolution operators ONNX Runtime runs
after its graph optimizations.
"""
import collections
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if batch < 1 or threads < 1:
        sys.exit("BATCH and THREADS must be at least 1")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    optimized = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
    options.optimized_model_filepath = optimized
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(optimized).graph.node)
    convs = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()) if "Conv" in op)
    source = session.get_inputs()[0]
    shape = [batch] + list(source.shape[1:])
    x = (np.random.default_rng(0).random(shape, dtype=np.float32) * 255).round()
    for _ in range(3):
        session.run(None, {source.name: x})
    rates = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(5):
            session.run(None, {source.name: x})
        rates.append(5 * batch / (time.perf_counter() - start))
    print(
        f"{os.path.basename(path)}: onnxruntime {ort.__version__} batch {batch} threads {threads}: "
        f"{statistics.median(rates):.0f} img/s ({convs})"
    )


if __name__ == "__main__":
    main()
