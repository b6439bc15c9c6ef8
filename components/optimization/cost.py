"""Cost and energy of one inference, read from the ``.tflite`` flatbuffer itself (the graph a device runs, after
conversion, fusion and quantization -- not the Keras model, whose layers the converter folds and rewrites).

Per op: MACs (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL), elementwise operations
(ADD/SUB count adds, MUL counts multiplies, every other op one operation per output element; RESHAPE-like ops that
only relabel a buffer count none), weight bytes (the op's constant inputs), activation bytes read and written.

Arena: the peak activation memory a microcontroller must allocate, planned as TensorFlow Lite Micro plans it
(``GreedyMemoryPlanner``): every non-constant tensor lives from the op that first produces it (graph inputs: before
op 0) to the op that last reads it (graph outputs: to the end); tensors are placed largest first at the lowest
16-byte-aligned offset that does not overlap a tensor alive at the same time. TFLM's arena also holds a persistent
tail (its per-tensor and per-op bookkeeping and per-channel quantization parameters); :func:`tflm_tail_bytes`
estimates it from the graph so ``arena_bytes`` is comparable with what TFLM's RecordingMicroAllocator reports
(measured against it in ``benchmarks/device.py``; the bookkeeping sizes are those of the 64-bit host build).

Energy per inference = arithmetic + memory traffic, from a per-operation table in picojoules. Default
(:data:`ENERGY_45NM`): Han et al., "Learning both Weights and Connections for Efficient Neural Networks" (2015),
Table 1 (45 nm, after Horowitz): 32-bit int add 0.1, float add 0.9, int mult 3.1, float mult 3.7, 32-bit SRAM read
5, 32-bit DRAM read 640; 8-bit add 0.03 and 8-bit mult 0.2 from Horowitz, "Computing's energy problem" (ISSCC
2014). An int8 MAC is an 8-bit multiply plus a 32-bit add (TFLite accumulates int8 products in int32); float16
weights are dequantized to float32 before computing, so they compute as float32.

Memory assumption (the ``memory`` parameter): activations in on-chip SRAM -- the arena is small, reused op after op,
and must be RAM -- and weights fetched from off-chip DRAM once per inference, as Han et al. count them (weights
that do not fit on chip are streamed each inference; this is what makes weight bytes, and so pruning and
quantization, dominate the energy). On a microcontroller executing weights from on-chip flash, pass
``memory={"weights": "sram", "activations": "sram"}`` (flash reads cost the order of an SRAM read). Each byte is
charged a quarter of a 32-bit access; writes cost as much as reads (the table has reads only). Every weight is read
once and every activation read and written once per op (no cache reuse modelled): a first-order estimate for
comparing variants and layers, not a measurement.

Sparsity (``sparse=True``, the default): a pruned model is stored and run as Han et al. assume -- a weight tensor
with enough exact zeros is stored compressed (its non-zero values plus a 1-bit-per-weight occupancy mask, chosen
only where that is smaller than dense) and the MACs of zero weights are skipped. A dense TFLite kernel does
neither, so with ``sparse=False`` a pruned model costs what its dense twin costs; the variant table uses the sparse
accounting, since that is what pruning buys on a sparse-aware runtime. ``macs``/``weight_bytes`` stay the dense
counts; ``effective_macs``/``stored_weight_bytes`` are what the energy is computed from.

TensorFlow-free: parsed with the flatbuffer schema that ``ai_edge_litert`` ships (``schema_py_generated``).
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

ENERGY_45NM: dict[str, float] = {  # picojoules per operation / per 32-bit access
    "int8_add": 0.03, "int8_mult": 0.2, "int32_add": 0.1, "int32_mult": 3.1,
    "float32_add": 0.9, "float32_mult": 3.7, "sram_read_32bit": 5.0, "dram_read_32bit": 640.0}
MEMORY = {"weights": "dram", "activations": "sram"}
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D")
ADD_OPS = ("ADD", "SUB")
MUL_OPS = ("MUL",)
FREE_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE")  # relabel a buffer: no arithmetic
ALIGN = 16  # TFLM's kBufferAlignment: every planned buffer starts on 16 bytes

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2, "INT8": 1,
             "FLOAT64": 8, "UINT32": 4, "UINT16": 2, "COMPLEX64": 8, "INT4": 0.5}
# TFLM host (64-bit) bookkeeping, bytes: what RecordingMicroAllocator's persistent tail holds besides buffers
# (allocator and interpreter state, a TfLiteEvalTensor and metadata per tensor, NodeAndRegistration + op data per
# op, an int32 output multiplier and shift per output channel of conv ops and per-channel fully-connected ones).
# Least-squares fit to the tails TFLM recorded for 17 int8 models of this project (2 to 34 ops; residuals within
# 160 bytes) -- docs/device.md.
_TAIL = {"fixed": 820, "per_op": 92.6, "per_tensor": 42.0, "per_output_channel": 8.0}
_CHANNEL_OPS = {"CONV_2D": 0, "TRANSPOSE_CONV": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": -1}  # filter axis


def _aligned(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


def _vector(getter) -> list[int]:
    value = getter()
    return [] if isinstance(value, int) else [int(v) for v in value]


def resolved_shapes(content: bytes) -> dict[int, list[int]]:
    """Every main-subgraph tensor's shape after one batch-1 LiteRT invoke on zeros. The converter leaves some
    shapes dynamic (a Conv1DTranspose's output is computed by SHAPE/PACK ops at run time and stored as [1, 1, 1, 1]),
    so the flatbuffer's static shapes understate those tensors; the interpreter materializes them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=bytes(content),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    for d in interpreter.get_input_details():
        interpreter.resize_tensor_input(d["index"], [1, *[int(v) for v in d["shape"][1:]]], strict=False)
    interpreter.allocate_tensors()
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], np.zeros([1, *d["shape"][1:]], dtype=d["dtype"]))
    interpreter.invoke()
    return {int(d["index"]): [int(v) for v in d["shape"]] for d in interpreter.get_tensor_details()}


def freeze_shapes(content: bytes) -> tuple[bytes, list[str]]:
    """``content`` with every tensor's shape (and shape signature) set, in place, to its batch-1 resolved shape:
    what TFLite Micro needs, since it has no dynamic tensors and plans and runs with the flatbuffer's shapes. Returns
    (new bytes, names of tensors whose rank changed and so could not be patched in place)."""
    buf = bytearray(content)
    sg = schema.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    shapes, skipped = resolved_shapes(content), []
    for t in range(sg.TensorsLength()):
        tensor, want = sg.Tensors(t), shapes.get(t)
        if want is None:
            continue
        for field in (4, 18):  # Tensor.shape, Tensor.shape_signature (schema vtable offsets)
            o = tensor._tab.Offset(field)
            if o == 0:
                continue
            start, n = tensor._tab.Vector(o), tensor._tab.VectorLen(o)
            if n == len(want):
                struct.pack_into(f"<{n}i", buf, start, *want)
            elif field == 4:
                skipped.append((tensor.Name() or b"").decode(errors="replace"))
    return bytes(buf), skipped


class Graph:
    """The main subgraph of a ``.tflite``: op names with input/output tensor indices, tensor shapes (resolved by
    LiteRT at batch 1 unless ``resolve=False``), dtypes, byte sizes and whether each is constant."""

    def __init__(self, content: bytes, resolve: bool = True):
        model = schema.Model.GetRootAsModel(bytearray(content), 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            custom = code.CustomCode()
            codes.append(custom.decode() if builtin == schema.BuiltinOperator.CUSTOM and custom
                         else _OP_NAMES.get(builtin, str(builtin)))
        sg = model.Subgraphs(0)
        self.subgraphs = model.SubgraphsLength()
        self.shapes, self.dtypes, self.const, self.names = [], [], [], []
        self.density: dict[int, float] = {}  # constant tensor -> fraction of elements that are not zero
        self.scales: list[int] = []  # quantization scales per tensor: 1 per tensor, > 1 per channel, 0 none
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            quantization = tensor.Quantization()
            self.scales.append(int(quantization.ScaleLength()) if quantization is not None else 0)
            buf = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
            self.shapes.append(_vector(tensor.ShapeAsNumpy))
            self.dtypes.append(_TYPE_NAMES.get(tensor.Type(), "FLOAT32"))
            self.const.append(bool(buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)))
            self.names.append((tensor.Name() or b"").decode(errors="replace"))
            if self.const[-1] and buf.DataLength() > 0:
                self.density[t] = _density(buf.DataAsNumpy(), self.dtypes[-1], tensor.Quantization())
        self.ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            self.ops.append((codes[op.OpcodeIndex()], [t for t in _vector(op.InputsAsNumpy) if t >= 0],
                             [t for t in _vector(op.OutputsAsNumpy) if t >= 0]))
        self.inputs, self.outputs = _vector(sg.InputsAsNumpy), _vector(sg.OutputsAsNumpy)
        if resolve:
            for t, shape in resolved_shapes(content).items():
                if t < len(self.shapes) and not self.const[t]:
                    self.shapes[t] = shape

    def stored_bytes(self, t: int) -> int:
        """Bytes of constant tensor ``t`` stored sparse (non-zeros + 1-bit mask) where that is smaller than dense."""
        dense, n = self.nbytes(t), self.elements(t)
        sparse = int(np.ceil(self.density.get(t, 1.0) * n * _ITEMSIZE.get(self.dtypes[t], 4))) + -(-n // 8)
        return min(dense, sparse)

    def elements(self, t: int) -> int:
        return int(np.prod(self.shapes[t])) if self.shapes[t] else 1

    def nbytes(self, t: int) -> int:
        return int(np.ceil(self.elements(t) * _ITEMSIZE.get(self.dtypes[t], 4)))


_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32,
          "INT16": np.int16, "INT64": np.int64, "FLOAT64": np.float64}


def _density(raw: np.ndarray, dtype: str, quantization) -> float:
    """Fraction of a constant buffer's elements that are not zero (for a quantized tensor: not its zero point)."""
    kind = _NUMPY.get(dtype)
    if kind is None or raw.size % np.dtype(kind).itemsize:
        return 1.0
    values = np.frombuffer(raw.tobytes(), dtype=kind)
    zero = 0
    if quantization is not None and quantization.ZeroPointLength() == 1:
        zero = int(quantization.ZeroPoint(0))
    return float((values != zero).mean()) if values.size else 1.0


def _macs(g: Graph, name: str, ins: list[int], outs: list[int]) -> int:
    out = g.elements(outs[0]) if outs else 0
    if name in ("CONV_2D", "CONV_3D"):  # filter [cout, kh, kw, cin/groups]: each output sums kh*kw*cin products
        return out * int(np.prod(g.shapes[ins[1]][1:]))
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, cout]: each output sums kh*kw products
        return out * int(np.prod(g.shapes[ins[1]][1:3]))
    if name == "FULLY_CONNECTED":  # weights [units, in]
        return out * int(g.shapes[ins[1]][-1])
    if name == "TRANSPOSE_CONV":  # inputs (output_shape, filter [cout, kh, kw, cin], input): every input scatters
        return g.elements(ins[2]) * int(np.prod(g.shapes[ins[1]][:3]))
    if name == "BATCH_MATMUL":
        return out * int(g.shapes[ins[0]][-1])
    return 0


# Ops whose data does not come first: input 0 (or 1) is a shape, indices or a condition -- an int32/bool tensor
# the graph may compute at run time (TRANSPOSE_CONV's output_shape comes from SHAPE/PACK), which says nothing about
# the arithmetic. The op computes in the type of the input named here.
DATA_INPUT = {"TRANSPOSE_CONV": 2, "FILL": 1, "SCATTER_ND": 1, "SELECT": 1, "SELECT_V2": 1, "SPARSE_TO_DENSE": 2,
              "ONE_HOT": 2}


def _compute_type(g: Graph, ins: list[int], name: str = "") -> str:
    """The arithmetic an op does: by its data input -- the first non-constant one, or for the ops of
    :data:`DATA_INPUT` the input named there (hybrid ops compute in float)."""
    first = DATA_INPUT.get(name, 0)
    data = ins[first:]
    act = next((t for t in data if not g.const[t]), data[0] if data else None)
    dtype = g.dtypes[act] if act is not None else "FLOAT32"
    return {"INT8": "int8", "UINT8": "int8", "INT16": "int32", "INT32": "int32", "INT64": "int32"}.get(dtype,
                                                                                                       "float32")


def op_costs(content: bytes | Graph, table: dict[str, float] | None = None,
             memory: dict[str, str] | None = None, sparse: bool = True) -> list[dict[str, Any]]:
    """One dict per op in execution order: op, output tensor name, compute type, macs, adds, mults (elementwise),
    weight_bytes, act_read_bytes, act_write_bytes, density (of the op's weights: non-zero fraction of its filter),
    effective_macs and stored_weight_bytes (``sparse``: zero weights skipped and stored compressed, else the dense
    counts) and energy_pj (compute_pj + memory_pj, from the effective counts)."""
    g = content if isinstance(content, Graph) else Graph(content)
    table = {**ENERGY_45NM, **(table or {})}
    memory = {**MEMORY, **(memory or {})}
    w_pj = table[f"{memory['weights']}_read_32bit"] / 4  # per byte
    a_pj = table[f"{memory['activations']}_read_32bit"] / 4
    rows = []
    for name, ins, outs in g.ops:
        kind = _compute_type(g, ins, name)
        macs = _macs(g, name, ins, outs)
        density = g.density.get(ins[1], 1.0) if macs and len(ins) > 1 and g.const[ins[1]] else 1.0
        effective = int(round(macs * density)) if sparse else macs
        out = sum(g.elements(t) for t in outs)
        adds = out if name in ADD_OPS or (name not in MAC_OPS + MUL_OPS + FREE_OPS) else 0
        mults = out if name in MUL_OPS else 0
        weight = sum(g.nbytes(t) for t in ins if g.const[t])
        stored = sum(g.stored_bytes(t) for t in ins if g.const[t]) if sparse else weight
        read = sum(g.nbytes(t) for t in ins if not g.const[t])
        written = sum(g.nbytes(t) for t in outs)
        acc = "int32" if kind == "int8" else kind  # int8 products accumulate in int32
        compute = (effective * (table[f"{kind}_mult"] + table[f"{acc}_add"]) + adds * table[f"{kind}_add"]
                   + mults * table[f"{kind}_mult"])
        mem = stored * w_pj + (read + written) * a_pj
        rows.append({"op": name, "output": g.names[outs[0]] if outs else "", "compute": kind, "macs": macs,
                     "adds": adds, "mults": mults, "weight_bytes": weight, "density": round(density, 6),
                     "effective_macs": effective, "stored_weight_bytes": stored, "act_read_bytes": read,
                     "act_write_bytes": written, "compute_pj": compute, "memory_pj": mem, "energy_pj": compute + mem})
    return rows


def scratch(g: Graph) -> dict[int, int]:
    """``{op index: bytes}`` of the scratch buffers TFLM's reference kernels request for one op's duration: an
    int8 TRANSPOSE_CONV accumulates its whole output in int32."""
    return {i: 4 * g.elements(outs[0]) for i, (name, ins, outs) in enumerate(g.ops)
            if name == "TRANSPOSE_CONV" and outs and g.dtypes[outs[0]] in ("INT8", "INT16")}


def lifetimes(g: Graph) -> dict[int, tuple[int, int]]:
    """``{tensor: (first op, last op)}`` for every non-constant tensor the graph plans memory for."""
    span: dict[int, list[int]] = {t: [0, 0] for t in g.inputs if not g.const[t]}
    for i, (_, ins, outs) in enumerate(g.ops):
        for t in outs:
            if not g.const[t]:
                span.setdefault(t, [i, i])
        for t in ins:
            if not g.const[t]:
                span.setdefault(t, [i, i])[1] = i
    end = max(len(g.ops) - 1, 0)
    for t in g.outputs:
        if t in span:
            span[t][1] = end
    return {t: (a, b) for t, (a, b) in span.items()}


def greedy_arena(sizes: dict[int, int], spans: dict[int, tuple[int, int]]) -> tuple[int, dict[int, int]]:
    """TFLM's GreedyMemoryPlanner: largest buffer first, each at the lowest aligned offset clear of every placed
    buffer whose lifetime overlaps its own. Returns (arena bytes, {tensor: offset})."""
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets = {}
    for t in sorted(sizes, key=lambda k: (-sizes[k], k)):
        size, (first, last) = _aligned(sizes[t]), spans[t]
        clash = sorted((o, s) for o, s, a, b in placed if a <= last and first <= b)
        offset = 0
        for o, s in clash:
            if offset + size <= o:
                break
            offset = max(offset, _aligned(o + s))
        placed.append((offset, size, first, last))
        offsets[t] = offset
    return max((o + s for o, s, _, _ in placed), default=0), offsets


def peak_live(sizes: dict[int, int], spans: dict[int, tuple[int, int]], ops: int) -> int:
    """The largest sum of aligned live buffers at any op: the lower bound any planner can reach."""
    return max((sum(_aligned(sizes[t]) for t, (a, b) in spans.items() if a <= i <= b) for i in range(max(ops, 1))),
               default=0)


def tflm_tail_bytes(g: Graph) -> int:
    """An estimate of TFLM's persistent arena tail for this graph (64-bit host build): fixed allocator state, one
    TfLiteEvalTensor per tensor, one NodeAndRegistration + op data per op, output multipliers/shifts per output
    channel. Calibrated against RecordingMicroAllocator (docs/device.md).
    An estimate for comparing and sizing, not TFLM's exact bookkeeping: op data differs by kernel.

    TFLM's conv, depthwise and transpose-conv kernels allocate a multiplier and shift per output channel whatever
    the filter's quantization; its FULLY_CONNECTED only for per-channel weights (more than one scale). A QAT or
    distilled Dense layer is quantized per tensor: counting its channels put 1,216 B too many in the dqn's estimate
    (2,912 B vs TFLM's 1,648; QA 23 N9)."""
    channels = sum(g.shapes[ins[1]][_CHANNEL_OPS[name]] for name, ins, _ in g.ops
                   if name in _CHANNEL_OPS and len(ins) > 1 and g.shapes[ins[1]]
                   and (name != "FULLY_CONNECTED" or g.scales[ins[1]] > 1))
    tail = (_TAIL["fixed"] + _TAIL["per_op"] * len(g.ops) + _TAIL["per_tensor"] * len(g.shapes)
            + _TAIL["per_output_channel"] * channels)
    return _aligned(tail)


def model_cost(content: bytes, table: dict[str, float] | None = None, memory: dict[str, str] | None = None,
               per_op: bool = False, sparse: bool = True) -> dict[str, Any]:
    """Totals for one ``.tflite``: macs, elementwise ops, weight_bytes (unique constant tensors), activation bytes
    read/written, activation_peak_bytes (greedy plan of activations alone), peak_live_bytes (lower bound),
    arena_bytes (activation plan + estimated TFLM tail), energy_uj (+ compute/memory split) and the assumptions
    (table, memory); ``effective_macs``/``stored_weight_bytes`` count zero weights as skipped and stored
    compressed (``sparse``, see the module docstring). ``per_op`` adds the :func:`op_costs` rows under ``per_op``."""
    g = Graph(content)
    rows = op_costs(g, table, memory, sparse)
    spans = lifetimes(g)
    sizes = {t: g.nbytes(t) for t in spans}
    for i, nbytes in scratch(g).items():  # keyed past the tensors: planned like a tensor alive during op i
        spans[len(g.shapes) + i], sizes[len(g.shapes) + i] = (i, i), nbytes
    plan, _ = greedy_arena(sizes, spans)
    weight_tensors = {t for _, ins, _ in g.ops for t in ins if g.const[t]}
    total = {
        "macs": sum(r["macs"] for r in rows), "elementwise_ops": sum(r["adds"] + r["mults"] for r in rows),
        "weight_bytes": sum(g.nbytes(t) for t in weight_tensors),
        "effective_macs": sum(r["effective_macs"] for r in rows),
        "stored_weight_bytes": sum(g.stored_bytes(t) for t in weight_tensors) if sparse else None,
        "act_read_bytes": sum(r["act_read_bytes"] for r in rows),
        "act_write_bytes": sum(r["act_write_bytes"] for r in rows),
        "activation_peak_bytes": plan, "peak_live_bytes": peak_live(sizes, spans, len(g.ops)),
        "arena_bytes": plan + tflm_tail_bytes(g),
        "compute_uj": round(sum(r["compute_pj"] for r in rows) / 1e6, 6),
        "memory_uj": round(sum(r["memory_pj"] for r in rows) / 1e6, 6),
        "energy_uj": round(sum(r["energy_pj"] for r in rows) / 1e6, 6), "ops": len(g.ops),
        "memory": {**MEMORY, **(memory or {})}, "energy_table": "custom" if table else "han2015_45nm",
        "sparse": sparse}
    if g.subgraphs > 1:
        total["note"] = f"{g.subgraphs - 1} nested subgraph(s) not counted"
    if per_op:
        total["per_op"] = rows
    return total
