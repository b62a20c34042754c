#!/usr/bin/env python3
"""ONNX Runtime's own int8 quantization of a float graph from `mognet-infer export-onnx --style
float` (or `bench --onnx-dir`): what a user of ONNX Runtime would deploy. Static quantization,
QOperator format (QLinearConv), per-channel int8 weights, uint8 activations, calibrated on 32
random images (pixels 0-255, seed 0: the benchmark's inputs are random too, so this graph is for
timing; calibrate on real images before reading its accuracy).

    pip install onnxruntime onnx numpy
    scripts/ort_quantize.py FLOAT.onnx OUT.onnx
"""
import logging
import os
import sys
import tempfile

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)


class RandomImages(CalibrationDataReader):
    """Four batches of eight random images of the graph's input shape."""

    def __init__(self, name, shape):
        rng = np.random.default_rng(0)
        batches = [rng.integers(0, 256, [8] + shape).astype(np.float32) for _ in range(4)]
        self.feeds = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self.feeds, None)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, out = sys.argv[1], sys.argv[2]
    graph = onnx.load(source)
    image = graph.graph.input[0]
    shape = [d.dim_value for d in image.type.tensor_type.shape.dim][1:]
    if not shape or any(d <= 0 for d in shape):
        sys.exit(f"{source}: the input's shape after the batch must be fixed, got {shape}")
    logging.getLogger().setLevel(logging.ERROR)
    # Written beside the output and renamed, so a failed run leaves no half-written graph.
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    try:
        quantize_static(source, tmp, RandomImages(image.name, shape),
                        quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {out}: ONNX Runtime static int8 quantization of {source}")


if __name__ == "__main__":
    main()
