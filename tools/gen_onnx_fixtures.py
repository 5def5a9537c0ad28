#!/usr/bin/env python3
"""Generates tests/fixtures/onnx: Conv and ConvTranspose cases run by ONNX Runtime.

Same manifest format as tests/fixtures/conformance (see its README.md). Random cases
cover every auto_pad mode, pads, strides, dilations, groups, output_padding and
output_shape; named cases pin each place where ONNX Runtime, the ONNX spec text and the
ONNX reference evaluator disagree (SEMANTICS_DETAIL.md section 3.4).

    python3 -m venv /tmp/onnxenv && /tmp/onnxenv/bin/pip install numpy onnx onnxruntime
    /tmp/onnxenv/bin/python tools/gen_onnx_fixtures.py
"""
import json
import os
import random
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")


def run(op, x, w, b, attrs):
    dtype = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    inputs = [helper.make_tensor_value_info("X", dtype, x.shape), helper.make_tensor_value_info("W", dtype, w.shape)]
    names = ["X", "W"]
    feeds = {"X": x, "W": w}
    if b is not None:
        inputs.append(helper.make_tensor_value_info("B", dtype, b.shape))
        names.append("B")
        feeds["B"] = b
    node = helper.make_node(op, names, ["Y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0], None
    except Exception as e:  # ORT refuses: record the message
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"


cases = []


def add(case_id, op, x, w, b, attrs):
    y, err = run(op, x, w, b, attrs)
    if err is not None and "NOT_IMPLEMENTED" in err:
        return
    args = {}
    for name, arr in (("X", x), ("W", w), ("B", b)):
        if arr is not None:
            f = f"{case_id}_{name}.npy"
            np.save(os.path.join(OUT, f), arr)
            args[name] = {"npy": f}
    args.update({k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()})
    if err is None:
        f = f"{case_id}_expected.npy"
        np.save(os.path.join(OUT, f), y)
        expect = {"npy": f}
    else:
        expect = {"error": err}
    cases.append({"id": case_id, "op": "onnx." + op, "dtype": str(x.dtype), "args": args, "expect": expect})


def arr(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    rng = np.random.default_rng(7)
    r = random.Random(7)
    modes = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]
    # Random Conv cases.
    for i in range(60):
        dtype = np.float32 if i % 3 else np.float64
        g = r.choice([1, 1, 2, 3])
        cg, mg = r.randint(1, 3), r.randint(1, 3)
        k = [r.randint(1, 4), r.randint(1, 4)]
        s = [r.randint(1, 3), r.randint(1, 3)]
        mode = modes[i % 4]
        d = [1, 1] if mode.startswith("SAME") else [r.randint(1, 2), r.randint(1, 2)]
        hw = [r.randint(4, 10), r.randint(4, 10)]
        attrs = {"auto_pad": mode, "strides": s, "dilations": d, "group": g, "kernel_shape": k}
        if mode == "NOTSET":
            attrs["pads"] = [r.randint(0, 2) for _ in range(4)]
        x = arr(rng, [r.randint(1, 2), cg * g] + hw, dtype)
        w = arr(rng, [mg * g, cg] + k, dtype)
        b = arr(rng, [mg * g], dtype) if i % 2 else None
        add(f"conv_{i}", "Conv", x, w, b, attrs)
    # Random ConvTranspose cases.
    for i in range(120):
        dtype = np.float32 if i % 3 else np.float64
        g = r.choice([1, 1, 2, 3])
        cg, mg = r.randint(1, 3), r.randint(1, 3)
        k = [r.randint(1, 4), r.randint(1, 4)]
        s = [r.randint(1, 3), r.randint(1, 3)]
        d = [r.randint(1, 2), r.randint(1, 2)]
        mode = modes[i % 4]
        hw = [r.randint(1, 6), r.randint(1, 6)]
        attrs = {"auto_pad": mode, "strides": s, "dilations": d, "group": g}
        if mode == "NOTSET" and i % 8 != 0:
            attrs["pads"] = [r.randint(0, 2) for _ in range(4)]
        if i % 5 == 1:
            attrs["output_padding"] = [r.randint(0, s[0] - 1), r.randint(0, s[1] - 1)]
        if i % 6 == 2:
            full = [(hw[a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 for a in range(2)]
            attrs["output_shape"] = [max(1, full[a] + r.randint(-3, s[a] - 1)) for a in range(2)]
        x = arr(rng, [r.randint(1, 2), cg * g] + hw, dtype)
        w = arr(rng, [cg * g, mg] + k, dtype)
        b = arr(rng, [mg * g], dtype) if i % 2 else None
        add(f"convt_{i}", "ConvTranspose", x, w, b, attrs)
    # Named cases: each divergence of SEMANTICS_DETAIL.md 3.4, and refusals.
    x33 = arr(rng, [1, 1, 3, 3], np.float32)
    w33 = arr(rng, [1, 1, 3, 3], np.float32)
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        add(f"div_same_output_padding_{mode}", "ConvTranspose", x33, w33, None, {"auto_pad": mode, "strides": [2, 2], "output_padding": [1, 1]})
        add(f"div_same_kernel_below_stride_{mode}", "ConvTranspose", x33, w33, None, {"auto_pad": mode, "strides": [4, 4]})
        add(f"div_same_plain_{mode}", "ConvTranspose", x33, w33, None, {"auto_pad": mode, "strides": [2, 2]})
    for ot in (1, 4, 6, 7, 8, 9):  # F = 7 for I=3, K=3, s=2; legal 1..=8
        add(f"div_output_shape_{ot}", "ConvTranspose", x33, w33, None, {"strides": [2, 2], "output_shape": [ot, ot]})
        add(f"div_output_shape_upper_{ot}", "ConvTranspose", x33, w33, None, {"auto_pad": "SAME_UPPER", "strides": [2, 2], "output_shape": [ot, 7]})
    add("div_output_shape_with_n_c", "ConvTranspose", x33, w33, None, {"strides": [2, 2], "output_shape": [1, 1, 6, 6]})
    add("div_output_padding_ge_stride", "ConvTranspose", x33, w33, None, {"strides": [2, 2], "output_padding": [2, 2]})
    add("div_output_padding_below_dilation", "ConvTranspose", x33, w33, None, {"strides": [1, 1], "dilations": [2, 2], "output_padding": [1, 1]})
    add("div_grouped", "ConvTranspose", arr(rng, [1, 4, 3, 3], np.float32), arr(rng, [4, 3, 2, 2], np.float32), arr(rng, [6], np.float32), {"group": 2, "strides": [2, 2]})
    add("div_conv_same_dilated", "Conv", arr(rng, [1, 1, 7, 7], np.float32), w33, None, {"auto_pad": "SAME_UPPER", "dilations": [2, 2]})
    add("neg_conv_pads_and_auto_pad", "Conv", arr(rng, [1, 1, 7, 7], np.float32), w33, None, {"auto_pad": "SAME_UPPER", "pads": [1, 1, 1, 1]})
    add("neg_convt_pads_and_auto_pad", "ConvTranspose", x33, w33, None, {"auto_pad": "VALID", "pads": [1, 1, 1, 1]})
    add("neg_conv_kernel_too_big", "Conv", arr(rng, [1, 1, 2, 2], np.float32), w33, None, {})
    add("neg_conv_group_mismatch", "Conv", arr(rng, [1, 4, 5, 5], np.float32), arr(rng, [5, 2, 3, 3], np.float32), None, {"group": 2})
    add("neg_conv_channels", "Conv", arr(rng, [1, 4, 5, 5], np.float32), arr(rng, [4, 3, 3, 3], np.float32), None, {"group": 1})
    add("neg_convt_output_too_small", "ConvTranspose", x33, w33, None, {"pads": [3, 3, 3, 3]})
    add("neg_conv_negative_pads", "Conv", arr(rng, [1, 1, 5, 5], np.float32), w33, None, {"pads": [-1, 0, 0, 0]})
    add("neg_conv_stride0", "Conv", arr(rng, [1, 1, 5, 5], np.float32), w33, None, {"strides": [0, 1]})
    manifest = {"format": 1, "generated_by": {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__, "seed": 7}, "cases": cases}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    n_err = sum("error" in c["expect"] for c in cases)
    print(f"{len(cases)} cases ({n_err} refusals) in {OUT}")


if __name__ == "__main__":
    main()
