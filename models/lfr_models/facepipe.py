"""A small numpy reference of the detection + alignment steps described in manifest.toml.

Used by the verification scripts (real aligned faces for MobileFaceNet, LFW checks); the Rust services
implement the same steps. Needs numpy and onnxruntime.

* :func:`detect` runs RetinaFace and decodes boxes, scores and 5 landmarks with the manifest's rules.
* :func:`similarity` is Umeyama's least-squares similarity transform (rotation, uniform scale,
  translation) mapping the landmarks onto a template.
* :func:`warp` samples the aligned chip with bilinear interpolation (zeros outside the image).
"""

from __future__ import annotations

import math

import numpy as np

MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))


def priors(height: int, width: int) -> np.ndarray:
    """RetinaFace priors (cx, cy, w, h), normalised, in the model's output order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        ny, nx = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cx = ((xs.reshape(-1) + 0.5) * step / width).repeat(len(sizes))
        cy = ((ys.reshape(-1) + 0.5) * step / height).repeat(len(sizes))
        w = np.tile(np.array(sizes, np.float64) / width, nx * ny)
        h = np.tile(np.array(sizes, np.float64) / height, nx * ny)
        out.append(np.stack([cx, cy, w, h], axis=1))
    return np.concatenate(out)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            xx1, yy1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            xx2, yy2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            a_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            a_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if inter / max(a_i + a_j - inter, 1e-9) <= iou:
                rest.append(j)
        order = rest
    return keep


def detect(session, rgb: np.ndarray, score_threshold: float = 0.9, nms_iou: float = 0.4):
    """Faces in an RGB uint8 image: list of (score, box[x1,y1,x2,y2], landmarks[5,2]), best first."""
    height, width = rgb.shape[:2]
    x = (rgb[..., ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
    loc, conf, lms = session.run(None, {"input": np.ascontiguousarray(x)})
    p = priors(height, width)
    scores = conf[0, :, 1]
    idx = np.nonzero(scores > score_threshold)[0]
    if idx.size == 0:
        return []
    p, reg, lm, s = p[idx], loc[0, idx].astype(np.float64), lms[0, idx].astype(np.float64), scores[idx]
    c = p[:, :2] + reg[:, :2] * 0.1 * p[:, 2:]
    wh = p[:, 2:] * np.exp(reg[:, 2:] * 0.2)
    scale = np.array([width, height])
    boxes = np.concatenate([(c - wh / 2) * scale, (c + wh / 2) * scale], axis=1)
    pts = (p[:, None, :2] + lm.reshape(-1, 5, 2) * 0.1 * p[:, None, 2:]) * scale
    keep = _nms(boxes, s, nms_iou)
    return [(float(s[i]), boxes[i], pts[i]) for i in keep]


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform (Umeyama) mapping points ``src`` onto ``dst``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / n
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    c = (sv * d).sum() / ((sc ** 2).sum() / n)
    t = mu_d - c * r @ mu_s
    return np.hstack([c * r, t[:, None]])


def warp(rgb: np.ndarray, m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Chip ``out(x, y) = rgb(m^-1 (x, y))`` with bilinear interpolation, zeros outside."""
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float64)

    def at(y, x):
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        v = img[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
        v[~ok] = 0
        return v

    out = (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy)
           + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def align(rgb: np.ndarray, landmarks: np.ndarray, template, size) -> np.ndarray:
    """Aligned chip (H, W, 3) for ``landmarks`` using a manifest template and template_size [w, h]."""
    return warp(rgb, similarity(landmarks, np.asarray(template)), int(size[0]), int(size[1]))
