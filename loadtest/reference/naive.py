#!/usr/bin/env python3
"""The naive reference pipeline: what a Python user writes in an afternoon with lfr's models.

    python naive.py VIDEO [--processes P] [--models DIR] [--enrol NAME=PHOTO ...]
                          [--threshold 0.5] [--input 640x480] [--json OUT]

Same models and same maths as lfr (RetinaFace mobilenet0.25 -> 5-point similarity alignment ->
MobileFaceNet -> cosine against the enrolled people), none of its engineering. It is naive on purpose:

- every frame of the video is detected, and EVERY face above the detector's threshold is aligned and
  embedded, every frame: no tracking, no skipping of faces already seen, no quality gate;
- parallelism is the obvious kind: the frames are cut into P contiguous chunks, one process per chunk
  (one per core), each with its own video reader and its own ONNX Runtime sessions at one thread;
- no bus, no queues, no persistence, no alerts: it only counts frames, faces and matches.

The load test compares lfr's throughput and CPU per frame against this script. It prints one JSON
object (also written to --json) with frames, faces, matches, wall time and CPU time of the workers;
the clock starts once every worker has loaded its models and opened the video.

Needs only numpy, opencv-python-headless and onnxruntime (loadtest/reference/requirements.txt).
"""

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import queue
import sys
import threading
import time

import cv2
import numpy as np
import onnxruntime as ort

DETECTOR = "retinaface-mnet025.onnx"
EMBEDDER = "mobilefacenet.onnx"
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
SCORE_THRESHOLD = 0.9
NMS_IOU = 0.4
# ArcFace 112x112 template: left eye, right eye, nose, left mouth corner, right mouth corner.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


class BadInput(Exception):
    """A video, photo or model file that cannot be used: exit code 2."""


class Failed(Exception):
    """Anything else that stops the run: exit code 1."""


def load_models(models_dir):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    det = ort.InferenceSession(os.path.join(models_dir, DETECTOR), opts, providers=cpu)
    emb = ort.InferenceSession(os.path.join(models_dir, EMBEDDER), opts, providers=cpu)
    return det, emb


_priors = {}


def priors(h, w):
    """RetinaFace priors (cx, cy, w, h), normalised, in the model's output order (y, x, size)."""
    if (h, w) not in _priors:
        out = []
        for step, sizes in zip(STEPS, MIN_SIZES):
            ny, nx = -(-h // step), -(-w // step)
            ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
            cx = ((xs.ravel() + 0.5) * step / w).repeat(len(sizes))
            cy = ((ys.ravel() + 0.5) * step / h).repeat(len(sizes))
            sw = np.tile(np.array(sizes, np.float32) / w, nx * ny)
            sh = np.tile(np.array(sizes, np.float32) / h, nx * ny)
            out.append(np.stack([cx, cy, sw, sh], axis=1))
        _priors[(h, w)] = np.concatenate(out).astype(np.float32)
    return _priors[(h, w)]


def nms(boxes, scores, iou):
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou]
    return np.array(keep, int)


def detect(det, bgr, max_wh):
    """Faces in a BGR frame: boxes [n,4], scores [n], landmarks [n,5,2], in frame pixels."""
    scale = min(1.0, max_wh[0] / bgr.shape[1], max_wh[1] / bgr.shape[0])
    img = bgr if scale == 1.0 else cv2.resize(
        bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)))
    h, w = img.shape[:2]
    x = (img.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
    loc, conf, lms = det.run(None, {"input": np.ascontiguousarray(x)})
    scores = conf[0, :, 1]
    idx = np.nonzero(scores > SCORE_THRESHOLD)[0]
    p, reg, lm, s = priors(h, w)[idx], loc[0, idx], lms[0, idx], scores[idx]
    c = p[:, :2] + reg[:, :2] * 0.1 * p[:, 2:]
    wh = p[:, 2:] * np.exp(reg[:, 2:] * 0.2)
    size = np.array([w, h], np.float32)
    boxes = np.concatenate([(c - wh / 2) * size, (c + wh / 2) * size], axis=1)
    pts = (p[:, None, :2] + lm.reshape(-1, 5, 2) * 0.1 * p[:, None, 2:]) * size
    keep = nms(boxes, s, NMS_IOU)
    return boxes[keep] / scale, s[keep], pts[keep] / scale


def embed(emb, bgr, landmarks):
    """L2-normalised 192-d embeddings [n,192] of the faces with these landmarks (one batch)."""
    chips = []
    for pts in landmarks:
        # Least squares over all five points (= Umeyama): with OpenCV's default 3 px RANSAC
        # threshold (or LMEDS) points get dropped and chips come out up to 17 px (4 px) off.
        m, _ = cv2.estimateAffinePartial2D(pts.astype(np.float32), TEMPLATE, ransacReprojThreshold=1e4)
        chips.append(cv2.warpAffine(bgr, m, (112, 112))[:, :, ::-1])  # BGR -> RGB
    x = ((np.stack(chips).astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
    (e,) = emb.run(None, {"input": np.ascontiguousarray(x)})
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def enrol(det, emb, photos, max_wh):
    names, templates = [], []
    for name, path in photos:
        img = cv2.imread(path)
        if img is None:
            raise BadInput(f"cannot read photo for {name!r}: {path}")
        boxes, _, pts = detect(det, img, max_wh)
        if len(boxes) == 0:
            raise BadInput(f"no face found in the photo for {name!r}: {path}")
        largest = np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        names.append(name)
        templates.append(embed(emb, img, pts[largest:largest + 1])[0])
    return names, np.array(templates, np.float32).reshape(-1, 192)


def worker(video, start, count, args, names, templates, barrier, results):
    try:
        cv2.setNumThreads(1)
        det, emb = load_models(args.models)
        cap = cv2.VideoCapture(video)
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        barrier.wait()  # the clock starts when every worker is ready
    except threading.BrokenBarrierError:
        return
    except Exception as e:  # noqa: BLE001 - reported by the parent
        results.put({"error": f"worker for frames {start}..{start + count}: {e}"})
        barrier.abort()
        return
    cpu0 = time.process_time()
    frames = faces = 0
    matches = dict.fromkeys(names, 0)
    try:
        while frames < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames += 1
            _, _, pts = detect(det, frame, args.input)
            faces += len(pts)
            if len(pts):
                sims = embed(emb, frame, pts) @ templates.T  # every face, every frame
                for best, sim in zip(sims.argmax(1), sims.max(1)) if names else ():
                    if sim >= args.threshold:
                        matches[names[best]] += 1
    except Exception as e:  # noqa: BLE001 - reported by the parent
        results.put({"error": f"worker for frames {start}..{start + count}: {e}"})
        return
    results.put({"frames": frames, "faces": faces, "matches": matches,
                 "cpu_s": time.process_time() - cpu0})


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video")
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    ap.add_argument("--models", default=os.path.expanduser("~/.cache/lfr/models"))
    ap.add_argument("--enrol", action="append", default=[], metavar="NAME=PHOTO")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--input", default="640x480", metavar="WxH",
                    help="largest detector input; bigger frames are scaled down to fit")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    try:
        w, h = (int(v) for v in args.input.lower().split("x"))
        assert w > 0 and h > 0
        args.input = (w, h)
    except (ValueError, AssertionError):
        ap.error(f"--input must be WIDTHxHEIGHT, got {args.input!r}")
    if args.processes < 1:
        ap.error("--processes must be at least 1")
    photos = []
    for e in args.enrol:
        name, sep, path = e.partition("=")
        if not sep or not name or not path:
            ap.error(f"--enrol must be NAME=PHOTO, got {e!r}")
        photos.append((name, os.path.expanduser(path)))
    args.enrol = photos
    return args


def main():
    args = parse_args()
    files = {f: os.path.join(args.models, f) for f in (DETECTOR, EMBEDDER)}
    for f in files.values():
        if not os.path.isfile(f):
            raise BadInput(f"model file not found: {f} (run scripts/setup.sh)")
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened() or not cap.read()[0]:
        raise BadInput(f"cannot open or read video: {args.video}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if total <= 0:
        raise BadInput(f"video reports no frame count: {args.video}")

    det, emb = load_models(args.models)
    names, templates = enrol(det, emb, args.enrol, args.input)
    del det, emb

    procs = min(args.processes, total)
    bounds = np.linspace(0, total, procs + 1).round().astype(int)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=worker, args=(args.video, int(a), int(b - a), args, names,
                                                templates, barrier, results))
               for a, b in zip(bounds[:-1], bounds[1:])]
    for w in workers:
        w.start()
    try:
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        try:
            raise Failed(results.get(timeout=10)["error"]) from None
        except queue.Empty:
            raise Failed("a worker did not start") from None
    t0 = time.perf_counter()
    done = [results.get() for _ in workers]
    wall = time.perf_counter() - t0
    for w in workers:
        w.join()
    for d in done:
        if "error" in d:
            raise Failed(d["error"])

    frames = sum(d["frames"] for d in done)
    faces = sum(d["faces"] for d in done)
    cpu = sum(d["cpu_s"] for d in done)
    report = {
        "frames": frames,
        "faces": faces,
        "faces_per_frame": round(faces / max(frames, 1), 3),
        "matches": {n: sum(d["matches"][n] for d in done) for n in names},
        "processes": procs,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "frames_per_s": round(frames / wall, 2),
        "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
        "input": list(args.input),
        "models": {f: sha256(p) for f, p in files.items()},
    }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    try:
        main()
    except (BadInput, Failed) as e:
        print(f"naive.py: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, BadInput) else 1)
