#!/usr/bin/env python3
"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

    python models/convert_dlib.py IN.dat OUT.onnx

The converter is :mod:`lfr_models.dlib_resnet` (dlib serialization reader + ONNX writer for dlib's
``anet_type``; its docstring describes the format and the layer semantics). It needs numpy and onnx:
run it with the conversion venv's python (``~/.cache/lfr/models-venv/bin/python``, created by
``models/fetch.py``). ``fetch.py`` calls the same code for the ``dlib-resnet-v1`` artefact;
``verify_dlib.py`` compares the result with dlib itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dat", help="dlib_face_recognition_resnet_model_v1.dat")
    p.add_argument("onnx", help="output ONNX file")
    args = p.parse_args(argv)
    try:
        from lfr_models import dlib_resnet
    except ImportError as e:
        print(f"error: {e}; run with the conversion venv's python (see models/README.md)",
              file=sys.stderr)
        return 1
    with open(args.dat, "rb") as f:
        data = f.read()
    net = dlib_resnet.parse(data)
    model = dlib_resnet.build_onnx(net)
    out = model.SerializeToString(deterministic=True)
    with open(args.onnx, "wb") as f:
        f.write(out)
    print(f"{args.onnx}: {len(out):,} bytes, sha256 {hashlib.sha256(out).hexdigest()}")
    print(f"  {len(net.layers)} dlib layers, input mean {tuple(round(m, 3) for m in net.input['mean'])}"
          f", loss_metric dist_thresh {net.loss['dist_thresh']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
