"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

The ``.dat`` file is dlib's own binary serialization of the network ``anet_type`` defined in dlib's
``examples/dnn_face_recognition_ex.cpp``::

    residual<N>      = add_prev1<block<N,1,tag1<SUBNET>>>
    residual_down<N> = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>
    block<N,stride>  = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>
    ares<N>          = relu<residual<N>>         ares_down<N> = relu<residual_down<N>>
    alevel0 = ares_down<256>
    alevel1 = ares<256,ares<256,ares_down<256>>>
    alevel2 = ares<128,ares<128,ares_down<128>>>
    alevel3 = ares<64,ares<64,ares<64,ares_down<64>>>>
    alevel4 = ares<32,ares<32,ares<32>>>
    anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
                max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>>

How dlib writes it (dlib/dnn/core.h, layers.h, input.h, tensor.h; dlib/serialize.h):

* integers: one size byte (low 4 bits = number of bytes that follow, 0x80 = negative) then the
  magnitude little-endian; ``bool``: one character ``'1'``/``'0'``; ``std::string``: length then bytes;
  ``float``/``double``: two integers, mantissa (int64) and exponent (int16), value = m * 2**e.
* ``resizable_tensor``: version 2, then n, k, nr, nc, then n*k*nr*nc little-endian IEEE float32.
* ``alias_tensor``: version 1, then n, k, nr, nc (a view into a layer's ``params`` tensor).
* ``add_loss_layer``: version 1, the loss details, then the subnetwork.
* ``add_layer``: version 2, the subnetwork (recursively), then the layer details, three bools,
  ``x_grad``, ``cached_output`` and ``params_grad`` tensors. The innermost ``add_layer`` (whose subnetwork
  is the input layer) is version 3: the input layer, the details, three bools, ``x_grad``,
  ``cached_output``, ``grad_final`` and ``_sample_expansion_factor``.
* ``add_tag_layer`` and ``add_skip_layer``: version 1 and the subnetwork; their tag ids are not written,
  so the converter takes them from the ``anet_type`` definition above and checks that the wrapper
  sequence in the file matches it exactly.

So the file starts with the chain of wrapper versions from the loss down to the input layer, then every
layer's details from the input outwards. Layer semantics in inference:

* ``input_rgb_image_sized<150>``: channel c of the tensor is (pixel_c - mean_c) / 256 with means
  (122.782, 117.001, 104.298) for R, G, B; the ONNX graph takes raw 0..255 RGB and does this itself.
* ``con_``: cross-correlation, filters [out, in, kh, kw] then biases, explicit padding from the file
  (0 for the stride-2 convolutions, k/2 for stride 1).
* ``affine_`` (batch norm frozen for inference): y = x * gamma[c] + beta[c]; folded into the preceding
  convolution.
* ``max_pool``/``avg_pool``: window/stride/padding from the file; ``avg_pool_everything`` = global mean.
* ``add_prev``: output sized to the maximum of both inputs in every dimension, the smaller one
  zero-padded at the end (this matters: the 256-channel residual_down of level 1 adds a 3x3 block output
  to a 4x4 pooled 128-channel shortcut). Expressed in ONNX as Pad + Add.
* ``fc_no_bias<128>``: y = x_flat @ W with W stored [num_inputs, num_outputs].
* ``loss_metric``: inference output is the fc output itself (not normalised).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------
# dlib serialization reader
# --------------------------------------------------------------------------------------------


class DlibFormatError(ValueError):
    """The file does not follow the dlib serialization layout this converter understands."""


class Reader:
    """Sequential reader for dlib's serialization primitives."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        """A dlib packed integer (any width, signed or unsigned)."""
        head = self._take(1)[0]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise DlibFormatError(f"bad integer header 0x{head:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def bool(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {c!r} at byte {self.pos - 1}")
        return c == b"1"

    def string(self) -> str:
        n = self.int()
        return self._take(n).decode("ascii")

    def real(self) -> float:
        """dlib's portable float/double: mantissa * 2**exponent (special exponents for inf/nan)."""
        mantissa = self.int()
        exponent = self.int()
        specials = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        if exponent in specials:
            return specials[exponent]
        return float(mantissa) * 2.0 ** exponent

    def tensor(self) -> np.ndarray:
        """A resizable_tensor as a float32 array of shape (n, k, nr, nc)."""
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        count = shape[0] * shape[1] * shape[2] * shape[3]
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos}, expected 1")
        return tuple(self.int() for _ in range(4))

    def peek_string_prefix(self, prefix: bytes) -> bool:
        """True if a string starting with ``prefix`` begins at the current position."""
        save = self.pos
        try:
            n = self.int()
            return n >= len(prefix) and self.data[self.pos:self.pos + len(prefix)] == prefix
        except DlibFormatError:
            return False
        finally:
            self.pos = save


@dataclass
class Layer:
    """One computational layer as read from the file (kind is dlib's version string)."""

    kind: str
    params: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network: loss details, input layer, the wrapper chain and the layers (input outwards)."""

    loss: dict
    input: dict
    chain: list[str]  # outermost first: "L" add_layer, "M" tag/skip marker, "I" add_layer over input
    layers: list[Layer]  # innermost (next to the input) first


def _layer_details(r: Reader) -> Layer:
    kind = r.string()
    if kind == "con_4":
        params = r.tensor()
        a = dict(num_filters=r.int(), nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(),
                 padding_y=r.int(), padding_x=r.int())
        a["filters"] = r.alias_tensor()
        a["biases"] = r.alias_tensor()
        for k in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            a[k] = r.real()
        return Layer(kind, params, a)
    if kind == "affine_":
        params = r.tensor()
        a = dict(gamma=r.alias_tensor(), beta=r.alias_tensor(), mode=r.int())
        return Layer(kind, params, a)
    if kind in ("relu_", "add_prev_"):
        return Layer(kind)
    if kind in ("max_pool_2", "avg_pool_2"):
        a = dict(nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(), padding_y=r.int(),
                 padding_x=r.int())
        return Layer(kind, None, a)
    if kind == "fc_2":
        a = dict(num_outputs=r.int(), num_inputs=r.int())
        params = r.tensor()
        a["weights"] = r.alias_tensor()
        a["biases"] = r.alias_tensor()
        a["bias_mode"] = r.int()
        for k in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            a[k] = r.real()
        return Layer(kind, params, a)
    raise DlibFormatError(f"unsupported dlib layer type {kind!r} before byte {r.pos}")


def parse(data: bytes) -> DlibNet:
    """Parse a serialized ``loss_metric`` network (the ``.dat`` file's bytes)."""
    r = Reader(data)
    if r.int() != 1:
        raise DlibFormatError("add_loss_layer version is not 1")
    loss_kind = r.string()
    if loss_kind != "loss_metric_2":
        raise DlibFormatError(f"loss layer {loss_kind!r}, expected loss_metric_2")
    loss = dict(kind=loss_kind, margin=r.real(), dist_thresh=r.real())

    chain: list[str] = []
    while True:
        version = r.int()
        if r.peek_string_prefix(b"input_"):
            if version not in (2, 3):
                raise DlibFormatError(f"input add_layer version {version}")
            chain.append("I")
            input_version = version
            break
        if version == 2:
            chain.append("L")
        elif version == 1:
            chain.append("M")
        else:
            raise DlibFormatError(f"unexpected wrapper version {version} at byte {r.pos}")
        if len(chain) > 10000:
            raise DlibFormatError("wrapper chain too long")

    in_kind = r.string()
    if in_kind != "input_rgb_image_sized":
        raise DlibFormatError(f"input layer {in_kind!r}, expected input_rgb_image_sized")
    inp = dict(kind=in_kind, mean=(r.real(), r.real(), r.real()), nr=r.int(), nc=r.int())

    layers: list[Layer] = []
    # innermost add_layer (over the input layer)
    layers.append(_layer_details(r))
    for _ in range(3):
        r.bool()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    r.tensor()  # grad_final
    if input_version == 3:
        r.int()  # _sample_expansion_factor
    # the rest, from the input outwards
    for kind in reversed(chain[:-1]):
        if kind == "M":
            continue
        layers.append(_layer_details(r))
        for _ in range(3):
            r.bool()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        r.tensor()  # params_grad
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, input=inp, chain=chain, layers=layers)


# --------------------------------------------------------------------------------------------
# the anet_type architecture, innermost first
# --------------------------------------------------------------------------------------------
# Each op: (kind, args). kinds: con(N,k,stride) affine relu max_pool(k,s) avg_pool(k,s)
# tag(id) skip(id) add_prev(id) avg_pool_everything fc(N)


def _block(n: int, stride: int) -> list[tuple]:
    return [("tag", 1), ("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    return _block(n, 1) + [("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    return _block(n, 2) + [("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]


def anet_ops() -> list[tuple]:
    """The ``anet_type`` network as a flat op list from the input outwards."""
    ops: list[tuple] = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    ops += _ares(32) * 3  # alevel4
    ops += _ares_down(64) + _ares(64) * 3  # alevel3
    ops += _ares_down(128) + _ares(128) * 2  # alevel2
    ops += _ares_down(256) + _ares(256) * 2  # alevel1
    ops += _ares_down(256)  # alevel0
    ops += [("avg_pool_everything",), ("fc", 128)]
    return ops


_FILE_KIND = {"con": "con_4", "affine": "affine_", "relu": "relu_", "max_pool": "max_pool_2",
              "avg_pool": "avg_pool_2", "avg_pool_everything": "avg_pool_2", "add_prev": "add_prev_",
              "fc": "fc_2"}


def check_architecture(net: DlibNet, ops: list[tuple]) -> None:
    """Raise unless the parsed file is exactly ``ops`` (wrapper chain, layer kinds, sizes, strides)."""
    expected_chain = ["M" if op[0] in ("tag", "skip") else "L" for op in reversed(ops)]
    expected_chain[-1] = "I"
    if net.chain != expected_chain:
        raise DlibFormatError("the file's layer/tag structure is not dlib's anet_type")
    layer_ops = [op for op in ops if op[0] not in ("tag", "skip")]
    if len(layer_ops) != len(net.layers):
        raise DlibFormatError(f"{len(net.layers)} layers in file, anet_type has {len(layer_ops)}")
    for i, (op, layer) in enumerate(zip(layer_ops, net.layers, strict=True)):
        if _FILE_KIND[op[0]] != layer.kind:
            raise DlibFormatError(f"layer {i}: file has {layer.kind}, anet_type has {op[0]}")
        a = layer.attrs
        if op[0] == "con":
            _, n, k, s = op
            if (a["num_filters"], a["nr"], a["nc"], a["stride_y"], a["stride_x"]) != (n, k, k, s, s):
                raise DlibFormatError(f"layer {i}: con parameters {a} differ from anet_type {op}")
        elif op[0] in ("max_pool", "avg_pool"):
            _, k, s = op
            if (a["nr"], a["nc"], a["stride_y"], a["stride_x"]) != (k, k, s, s):
                raise DlibFormatError(f"layer {i}: pool parameters {a} differ from anet_type {op}")
        elif op[0] == "affine" and layer.attrs["mode"] != 0:  # CONV_MODE == 0
            raise DlibFormatError(f"layer {i}: affine_ is not in CONV_MODE: {layer.attrs}")
        elif op[0] == "avg_pool_everything":
            if (a["nr"], a["nc"], a["padding_y"], a["padding_x"]) != (0, 0, 0, 0):
                raise DlibFormatError(f"layer {i}: not avg_pool_everything: {a}")
        elif op[0] == "fc":
            if a["num_outputs"] != op[1] or a["bias_mode"] != 1:  # FC_NO_BIAS == 1
                raise DlibFormatError(f"layer {i}: fc parameters {a} differ from fc_no_bias<{op[1]}>")


# --------------------------------------------------------------------------------------------
# ONNX graph
# --------------------------------------------------------------------------------------------


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - k) // stride


def build_onnx(net: DlibNet, input_name: str = "input", output_name: str = "embedding",
               opset: int = 17):
    """Build the ONNX ModelProto for a parsed anet_type network (batch dimension ``N`` dynamic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ops = anet_ops()
    check_architecture(net, ops)

    nodes: list = []
    inits: list = []
    counter = {"n": 0}

    def name(prefix: str) -> str:
        counter["n"] += 1
        return f"{prefix}_{counter['n']}"

    def const(prefix: str, array: np.ndarray) -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    nr, nc = net.input["nr"], net.input["nc"]
    mean = np.array(net.input["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    x = name("sub")
    nodes.append(helper.make_node("Sub", [input_name, const("mean", mean)], [x], name=x))
    y = name("scale")
    nodes.append(helper.make_node("Mul", [x, const("inv256", np.array(1.0 / 256.0, np.float32))],
                                  [y], name=y))
    # current tensor name and its static (C, H, W)
    cur, shape = y, (3, nr, nc)
    tags: dict[int, tuple[str, tuple]] = {}

    layer_iter = iter(net.layers)
    pending_conv = None  # (layer) waiting for a following affine to fold into

    def emit_conv(layer: Layer, gamma=None, beta=None):
        nonlocal cur, shape
        a = layer.attrs
        n, k_in = a["filters"][0], a["filters"][1]
        w_size = int(np.prod(a["filters"]))
        flat = layer.params.reshape(-1)
        w = flat[:w_size].reshape(a["filters"]).astype(np.float32)
        b = flat[w_size:w_size + n].astype(np.float32)
        if gamma is not None:
            w = (w * gamma.reshape(-1, 1, 1, 1)).astype(np.float32)
            b = (b * gamma + beta).astype(np.float32)
        if k_in != shape[0]:
            raise DlibFormatError(f"conv expects {k_in} input channels, gets {shape[0]}")
        out = name("conv")
        nodes.append(helper.make_node(
            "Conv", [cur, const("W", w), const("B", b)], [out], name=out,
            kernel_shape=[a["nr"], a["nc"]], strides=[a["stride_y"], a["stride_x"]],
            pads=[a["padding_y"], a["padding_x"], a["padding_y"], a["padding_x"]]))
        cur = out
        shape = (n, _out_size(shape[1], a["nr"], a["stride_y"], a["padding_y"]),
                 _out_size(shape[2], a["nc"], a["stride_x"], a["padding_x"]))

    for op in ops:
        kind = op[0]
        if kind == "tag":
            tags[op[1]] = (cur, shape)
            continue
        if kind == "skip":
            cur, shape = tags[op[1]]
            continue
        layer = next(layer_iter)
        if kind == "con":
            pending_conv = layer
            continue
        if kind == "affine":
            if pending_conv is None:
                raise DlibFormatError("affine layer not preceded by a convolution")
            a = layer.attrs
            p = layer.params.reshape(-1)
            g = p[:int(np.prod(a["gamma"]))]
            bt = p[g.size:g.size + int(np.prod(a["beta"]))]
            emit_conv(pending_conv, g.astype(np.float32), bt.astype(np.float32))
            pending_conv = None
            continue
        if pending_conv is not None:  # a convolution not followed by affine
            emit_conv(pending_conv)
            pending_conv = None
        if kind == "relu":
            out = name("relu")
            nodes.append(helper.make_node("Relu", [cur], [out], name=out))
            cur = out
        elif kind in ("max_pool", "avg_pool"):
            a = layer.attrs
            out = name(kind)
            onnx_op = "MaxPool" if kind == "max_pool" else "AveragePool"
            nodes.append(helper.make_node(
                onnx_op, [cur], [out], name=out, kernel_shape=[a["nr"], a["nc"]],
                strides=[a["stride_y"], a["stride_x"]],
                pads=[a["padding_y"], a["padding_x"], a["padding_y"], a["padding_x"]]))
            cur = out
            shape = (shape[0], _out_size(shape[1], a["nr"], a["stride_y"], a["padding_y"]),
                     _out_size(shape[2], a["nc"], a["stride_x"], a["padding_x"]))
        elif kind == "add_prev":
            other, oshape = tags[op[1]]
            target = tuple(max(s, t) for s, t in zip(shape, oshape, strict=True))
            operands = []
            for t_name, t_shape in ((cur, shape), (other, oshape)):
                if t_shape != target:
                    pads = [0, 0, 0, 0, 0, target[0] - t_shape[0], target[1] - t_shape[1],
                            target[2] - t_shape[2]]
                    padded = name("pad")
                    nodes.append(helper.make_node(
                        "Pad", [t_name, const("pads", np.array(pads, np.int64))], [padded],
                        name=padded, mode="constant"))
                    t_name = padded
                operands.append(t_name)
            out = name("add")
            nodes.append(helper.make_node("Add", operands, [out], name=out))
            cur, shape = out, target
        elif kind == "avg_pool_everything":
            out = name("gap")
            nodes.append(helper.make_node("GlobalAveragePool", [cur], [out], name=out))
            cur, shape = out, (shape[0], 1, 1)
        elif kind == "fc":
            a = layer.attrs
            if a["num_inputs"] != shape[0] * shape[1] * shape[2]:
                raise DlibFormatError(f"fc expects {a['num_inputs']} inputs, gets {shape}")
            flat = name("flatten")
            nodes.append(helper.make_node("Flatten", [cur], [flat], name=flat, axis=1))
            w = layer.params.reshape(a["num_inputs"], a["num_outputs"]).astype(np.float32)
            nodes.append(helper.make_node("MatMul", [flat, const("fcW", w)], [output_name],
                                          name="fc"))
            cur, shape = output_name, (a["num_outputs"],)
        else:
            raise DlibFormatError(f"unhandled op {op}")

    if cur != output_name:
        raise DlibFormatError("network does not end with the fc layer")

    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, nr, nc])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", shape[0]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lfr-models convert_dlib", producer_version="1")
    model.ir_version = 8
    model.doc_string = ("dlib face recognition ResNet v1 (dlib_face_recognition_resnet_model_v1.dat), "
                        "converted by lfr models/convert_dlib.py. Input: RGB 0..255 NCHW 150x150 "
                        "aligned chip; output: 128-d descriptor (not normalised), same person if "
                        "L2 distance < 0.6.")
    onnx.checker.check_model(model, full_check=True)
    return model


def convert(dat_bytes: bytes) -> bytes:
    """Convert the ``.dat`` file's bytes to serialized ONNX bytes (deterministic)."""
    net = parse(dat_bytes)
    model = build_onnx(net)
    return model.SerializeToString(deterministic=True)
