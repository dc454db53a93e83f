#!/usr/bin/env python3
"""Measure 1:1 match rates of the manifest's embedders and thresholds on LFW (when present).

    python3 models/eval_lfw.py [--models DIR] [--images 2000] [--lfw-dir ../shared/faces/lfw-dev]

Pipeline as in the services: RetinaFace (score >= manifest threshold; the face nearest the image centre),
5 landmarks -> manifest template (similarity transform) -> chip -> embedder. Pairs: every same-identity
pair (genuine) and every different-identity pair (impostor) among the sampled images. Prints, per
embedder, the false match rate (FMR) and false non-match rate (FNMR) at the manifest threshold and the
thresholds that give FMR 1e-3 and 1e-4. LFW is not shipped with the project: without the folder the
script says so and exits 0. Runs in the verification venv (see lfr_models/verifyenv.py).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lfr_models import verifyenv  # noqa: E402

verifyenv.reexec_in_venv(os.path.abspath(__file__), ["dlib", "numpy", "onnxruntime"])

import dlib  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from lfr_models import facepipe, manifest  # noqa: E402


def sample(lfw_dir: str, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(identity, path) pairs; identities with 2+ images first so genuine pairs exist."""
    people = sorted(os.listdir(lfw_dir))
    multi, single = [], []
    for person in people:
        files = sorted(os.path.join(lfw_dir, person, f) for f in os.listdir(os.path.join(lfw_dir, person)))
        (multi if len(files) > 1 else single).append((person, files))
    rng = random.Random(seed)
    rng.shuffle(multi)
    rng.shuffle(single)
    out: list[tuple[str, str]] = []
    for person, files in multi:
        out += [(person, f) for f in files[:4]]
        if len(out) >= count * 3 // 4:
            break
    out += [(person, files[0]) for person, files in single[:count - len(out)]]
    return out[:count]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=verifyenv.default_models_dir())
    p.add_argument("--lfw-dir", default=os.path.join(HERE, "..", "..", "shared", "faces", "lfw-dev"))
    p.add_argument("--images", type=int, default=2000)
    args = p.parse_args(argv)
    lfw_dir = os.path.abspath(args.lfw_dir)
    if not os.path.isdir(lfw_dir):
        print(f"skipped: {lfw_dir} not present (LFW is not shipped with the project)")
        return 0

    det_path, det = verifyenv.model_path(args.models, "retinaface-mnet025")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    detector = ort.InferenceSession(det_path, so, providers=["CPUExecutionProvider"])
    embedders = []
    for art in manifest.load():
        if art.role == "embedder":
            path, _ = verifyenv.model_path(args.models, art.name)
            embedders.append((art, ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])))

    items = sample(lfw_dir, args.images)
    labels, feats = [], {a.name: [] for a, _ in embedders}
    t0 = time.monotonic()
    for person, path in items:
        rgb = dlib.load_rgb_image(path)
        faces = facepipe.detect(detector, rgb, det.spec["detector"]["score_threshold"],
                                det.spec["detector"]["nms_iou"])
        if not faces:
            continue
        centre = np.array(rgb.shape[1::-1]) / 2
        _, box, lms = min(faces, key=lambda f: np.linalg.norm((f[1][:2] + f[1][2:]) / 2 - centre))
        labels.append(person)
        for art, sess in embedders:
            emb, inp = art.spec["embedder"], art.spec["input"]
            chip = facepipe.align(rgb, lms, emb["template"], emb["template_size"])
            x = chip.transpose(2, 0, 1)[None].astype(np.float32)
            x = (x - np.array(inp["mean"], np.float32).reshape(1, 3, 1, 1)) / np.array(
                inp["std"], np.float32).reshape(1, 3, 1, 1)
            feats[art.name].append(sess.run(None, {inp["name"]: x})[0][0])
    print(f"{len(labels)} faces from {len(items)} LFW images, {len(set(labels))} identities "
          f"({time.monotonic() - t0:.0f} s)")

    lab = np.array(labels)
    same = lab[:, None] == lab[None, :]
    iu = np.triu_indices(len(lab), 1)
    genuine, impostor = same[iu], ~same[iu]
    print(f"pairs: {genuine.sum()} genuine, {impostor.sum()} impostor")
    for art, _ in embedders:
        emb = art.spec["embedder"]
        f = np.array(feats[art.name], np.float64)
        if emb["metric"] == "cosine":
            f = f / np.linalg.norm(f, axis=1, keepdims=True)
            score = (f @ f.T)[iu]  # higher = more similar
        else:
            sq = (f ** 2).sum(1)
            score = -np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0))[iu]
        thr = emb["threshold"] if emb["metric"] == "cosine" else -emb["threshold"]
        fmr = (score[impostor] >= thr).mean()
        fnmr = (score[genuine] < thr).mean()
        print(f"{art.name}: manifest rule ({emb['match_if']}, threshold {emb['threshold']}): "
              f"FMR {fmr:.2e}, FNMR {fnmr:.3f}")
        imp = np.sort(score[impostor])[::-1]
        for rate in (1e-3, 1e-4):
            t = imp[int(rate * len(imp))]
            shown = t if emb["metric"] == "cosine" else -t
            print(f"   FMR {rate:.0e}: threshold {shown:.3f}, FNMR {(score[genuine] < t).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
