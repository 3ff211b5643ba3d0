"""EfficientNet-Lite0 as an ONNX graph built from the checkpoint's own tensors (the `onnx` helper
API, no torch; TensorFlow SAME padding as explicit pads), run by onnxruntime on 2 threads: its
logits checked against tests/golden/efficientnet_reference.json and its median time on one
224 x 224 crop, to set beside `tandem bench vision`'s classifier column (same machine, one run).

Run: python3 -m tools.efficientnet_onnx MODEL_DIR [RUNS]
"""
import sys
import time
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from tools.efficientnet_reference import BLOCKS, BN_EPS, ROOT, state_dict


def build(sd):
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def conv(x, w_name, k, s, hw, groups=1):
        pads = []
        for n in hw:
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        y = f"{w_name}.out"
        nodes.append(helper.make_node("Conv", [x, const(w_name, sd[w_name])], [y], kernel_shape=[k, k],
                                      strides=[s, s], group=groups,
                                      pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]]))
        return y, [-(-n // s) for n in hw]

    def bn(x, p, act=True):
        y = f"{p}.bn"
        nodes.append(helper.make_node("BatchNormalization", [x] + [const(f"{p}.{n}", sd[f"{p}.{n}"]) for n in
                                      ("weight", "bias", "running_mean", "running_var")], [y], epsilon=BN_EPS))
        if not act:
            return y
        nodes.append(helper.make_node("Clip", [y, const(f"{p}.lo", 0.0), const(f"{p}.hi", 6.0)], [y + ".r6"]))
        return y + ".r6"

    x, hw = conv("input", "_conv_stem.weight", 3, 2, [224, 224])
    x = bn(x, "_bn0")
    for i, (e, k, s, cin, cout) in enumerate(BLOCKS):
        p, inp = f"_blocks.{i}.", x
        if e != 1:
            x, _ = conv(x, p + "_expand_conv.weight", 1, 1, hw)
            x = bn(x, p + "_bn0")
        x, hw = conv(x, p + "_depthwise_conv.weight", k, s, hw, groups=cin * e)
        x = bn(x, p + "_bn1")
        x, _ = conv(x, p + "_project_conv.weight", 1, 1, hw)
        x = bn(x, p + "_bn2", act=False)
        if s == 1 and cin == cout:
            nodes.append(helper.make_node("Add", [x, inp], [x + ".res"]))
            x = x + ".res"
    x, _ = conv(x, "_conv_head.weight", 1, 1, hw)
    x = bn(x, "_bn1")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", const("fc.w", sd["_fc.weight"]), const("fc.b", sd["_fc.bias"])],
                                  ["logits"], transB=1))
    graph = helper.make_graph(nodes, "efficientnet_lite0",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    model_dir, runs = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20
    model = build(state_dict(model_dir / "efficientnet-lite0.pth"))
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    golden = json.loads((ROOT / "tests/golden/efficientnet_reference.json").read_text())
    for im in golden["images"]:
        crop = np.asarray(Image.open(ROOT / im["crop"]).convert("RGB"), dtype=np.float32)
        x = ((crop - 127.0) / 128.0).transpose(2, 0, 1)[None]
        logits = sess.run(None, {"input": x})[0][0]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {"input": x})
            times.append(time.perf_counter() - t)
        diff = np.abs(logits - np.array(im["logits"])).max()
        print(f"{im['file']}: onnxruntime {ort.__version__} 2 threads median {np.median(times) * 1e3:.1f} ms "
              f"over {runs}; max |Δlogit| vs reference {diff:.1e}; top-1 {int(np.argmax(logits))}")


if __name__ == "__main__":
    main()
