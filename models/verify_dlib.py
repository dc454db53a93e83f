#!/usr/bin/env python3
"""Prove the dlib ResNet conversion: ONNX descriptors vs dlib's own on real aligned face chips.

    python3 models/verify_dlib.py [--models DIR] [--lfw N] [--tolerance 1e-4]

For every face that dlib's HOG detector finds in the photos (the face_recognition 1.3.0 sdist's
``tests/test_images``, plus N images of ``../shared/faces/lfw-dev`` when that folder exists), the
150x150 chip is made by dlib itself (5-point shape predictor from face-recognition-models 0.3.0,
``dlib.get_face_chip(img, shape, size=150, padding=0.25)``). Each chip's descriptor is computed by dlib
(``face_recognition_model_v1(dat).compute_face_descriptor(chip)``) and by ``dlib-resnet-v1.onnx`` in
onnxruntime (raw RGB chip, NCHW, batches of up to 16), and the largest absolute difference is reported.
Exit status 1 if it exceeds ``--tolerance``.

Runs in its own venv with ``dlib-bin`` (created on first use; see lfr_models/verifyenv.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lfr_models import verifyenv  # noqa: E402

verifyenv.reexec_in_venv(os.path.abspath(__file__), ["dlib", "numpy", "onnxruntime"])

import dlib  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from lfr_models import manifest  # noqa: E402


def chips_from(paths: list[str], detector, predictor, upsample: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for path in paths:
        img = dlib.load_rgb_image(path)
        for k, rect in enumerate(detector(img, upsample)):
            chip = dlib.get_face_chip(img, predictor(img, rect), size=150, padding=0.25)
            out.append((f"{os.path.basename(path)}#{k}", chip))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=verifyenv.default_models_dir())
    p.add_argument("--cache", default=verifyenv.default_cache())
    p.add_argument("--lfw-dir", default=os.path.join(HERE, "..", "..", "shared", "faces", "lfw-dev"))
    p.add_argument("--lfw", type=int, default=100, help="LFW images to add when present (0: none)")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args(argv)

    onnx_path, art = verifyenv.model_path(args.models, "dlib-resnet-v1")
    with tempfile.TemporaryDirectory(prefix="lfr-verify-dlib-") as tmp:
        dat = verifyenv.extract(art.source, art.source["path"], args.cache, tmp)
        if manifest.sha256_file(dat) != art.source["member_sha256"]:
            raise SystemExit(f"error: {dat} does not match member_sha256 in the manifest")
        sp5 = verifyenv.extract(art.source, "face_recognition_models/models/"
                                "shape_predictor_5_face_landmarks.dat", args.cache, tmp)
        photos = [verifyenv.extract(verifyenv.PHOTOS_SOURCE, f"tests/test_images/{name}",
                                    args.cache, tmp) for name in verifyenv.PHOTOS]
        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(sp5)
        reference = dlib.face_recognition_model_v1(dat)
        chips = chips_from(photos, detector, predictor, upsample=1)
        n_photo_chips = len(chips)
        lfw = verifyenv.lfw_images(os.path.abspath(args.lfw_dir), args.lfw)
        chips += chips_from(lfw, detector, predictor, upsample=0)

    print(f"dlib {dlib.__version__}, onnxruntime {ort.__version__}, model {onnx_path}")
    print(f"chips: {n_photo_chips} from face_recognition test photos, "
          f"{len(chips) - n_photo_chips} from {len(lfw)} LFW images"
          + ("" if lfw else " (LFW folder absent or --lfw 0)"))
    if not chips:
        print("error: no faces found", file=sys.stderr)
        return 1

    t0 = time.monotonic()
    ref = np.array([np.array(reference.compute_face_descriptor(c)) for _, c in chips], np.float64)
    t_dlib = time.monotonic() - t0
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    batch = np.stack([c.transpose(2, 0, 1) for _, c in chips]).astype(np.float32)
    t0 = time.monotonic()
    got = np.concatenate([sess.run(None, {"input": batch[i:i + 16]})[0]
                          for i in range(0, len(batch), 16)]).astype(np.float64)
    t_onnx = time.monotonic() - t0
    single = sess.run(None, {"input": batch[:1]})[0][0]

    diff = np.abs(got - ref)
    per_chip = diff.max(axis=1)
    l2 = np.linalg.norm(got - ref, axis=1)
    for (name, _), d in zip(chips[:n_photo_chips], per_chip[:n_photo_chips], strict=True):
        print(f"  {name:28s} max |onnx - dlib| = {d:.2e}")
    names = [n for n, _ in chips]
    ob = [i for i, n in enumerate(names) if n.startswith("obama.jpg")]
    bi = [i for i, n in enumerate(names) if n.startswith("biden.jpg")]
    ob2 = [i for i, n in enumerate(names) if n.startswith("obama2.jpg")]
    if ob and bi and ob2:
        print(f"  sanity: L2(obama, obama2) = {np.linalg.norm(got[ob[0]] - got[ob2[0]]):.3f}, "
              f"L2(obama, biden) = {np.linalg.norm(got[ob[0]] - got[bi[0]]):.3f} (rule: same < 0.6)")
    worst = float(diff.max())
    print(f"max abs difference over {len(chips)} chips x 128 dims: {worst:.3e} "
          f"(mean {diff.mean():.2e}, max L2 {l2.max():.2e}); batch-1 vs batch run: "
          f"{np.abs(single - got[0]).max():.1e}")
    print(f"time: dlib {1000 * t_dlib / len(chips):.1f} ms/chip, onnxruntime (1 thread, batches "
          f"of 16) {1000 * t_onnx / len(chips):.1f} ms/chip")
    if not worst <= args.tolerance:
        print(f"FAILED: {worst:.3e} > tolerance {args.tolerance}")
        return 1
    print(f"OK: within tolerance {args.tolerance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
