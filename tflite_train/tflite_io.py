"""Read a .tflite flatbuffer into the IR and write the IR back.

Reading uses the `tflite` package's generated accessors; writing uses its generated builder
functions with `flatbuffers.Builder`. Builtin options are handled generically by reflection
over the generated classes, so any builtin operator round-trips, not only the ones we run.
"""
from __future__ import annotations

import importlib
import math
import os
import re
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

from .errors import ModelError, printable
from .ir import TENSOR_TYPES, TRAINING_KEY, TYPE_CODES, Graph, Operator, Quantization, Tensor

BUILTIN_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
BUILTIN_CODES: dict[str, int] = {v: k for k, v in BUILTIN_NAMES.items()}
OPTIONS_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
OPTIONS_CODES: dict[str, int] = {v: k for k, v in OPTIONS_NAMES.items()}
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
_BUFFER_ALIGN = 16     # tensor data aligned for word/double-word loads on the device
_ACCESSOR_SUFFIXES = ("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _option_fields(cls) -> dict[str, str]:
    """snake_case field name -> CamelCase accessor of a generated options table class."""
    fields = {}
    for name in dir(cls):
        if (not name[:1].isupper() or name == "Init" or name.startswith("GetRootAs")
                or name.endswith(_ACCESSOR_SUFFIXES)):
            continue
        fields[_snake(name)] = name
    return fields


def _options_module(options_type: str):
    try:
        return importlib.import_module(f"tflite.{options_type}")
    except ImportError as exc:
        raise ModelError(f"unknown builtin options table {options_type}") from exc


# ----------------------------------------------------------------------------- reading

def load(path: str | os.PathLike) -> Graph:
    """Load and validate a .tflite file. Every problem is a ModelError with a one-line
    message; the graph returned has passed `validate.check`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a .tflite file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") \
            from None
    return parse(data, str(path))


def parse(data: bytes, what: str = "model") -> Graph:
    """The IR of .tflite bytes, validated (`validate.check`): nothing malformed gets past."""
    from .validate import check
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{what}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    if len(data) > MAX_FILE_BYTES:
        raise ModelError(f"{what}: {len(data):,} bytes; files over {MAX_FILE_BYTES:,} bytes "
                         "are refused")
    try:
        return check(_Reader(bytes(data)).graph())
    except ModelError as exc:
        raise ModelError(f"{what}: {exc}") from exc


# Far beyond any model a microcontroller runs (1 MB of flash), and the flatbuffer format's
# own 2 GB limit.
MAX_FILE_BYTES = (1 << 31) - 1


class _Reader:
    """The flatbuffer through the `tflite` package's generated accessors. A malformed file
    makes them raise anything (struct.error, IndexError, ValueError, ...) or return
    nonsense; every table is read inside `_part`, which turns the former into a ModelError
    naming the part, and every vector length is checked against the file size before
    anything is allocated for it. Values are checked by `validate` once the IR exists."""

    def __init__(self, data: bytes):
        self.data = data

    def _part(self, where: str, read):
        try:
            return read()
        except ModelError:
            raise
        except Exception:
            raise ModelError(f"{where} is unreadable: the file is malformed or truncated") \
                from None

    def _length(self, n: int, itemsize: int, where: str) -> int:
        if n < 0 or n * itemsize > len(self.data):
            raise ModelError(f"{where}: a length of {n:,} runs past the end of the file "
                             "(malformed or truncated)")
        return n

    def _ints(self, table, name: str, where: str) -> list[int]:
        n = self._length(getattr(table, name + "Length")(), 4, f"{where} {_snake(name)}")
        return [int(x) for x in getattr(table, name + "AsNumpy")()] if n else []

    def graph(self) -> Graph:
        model = self._part("the model table", lambda: tflite.Model.GetRootAs(self.data, 0))
        n_sub = self._part("the subgraph list", model.SubgraphsLength)
        if n_sub == 0:
            raise ModelError("the model has no subgraph")
        if n_sub > 1:
            raise ModelError(f"the model has {n_sub} subgraphs; only single-subgraph models "
                             "(no control flow) are supported")
        sub = self._part("subgraph 0", lambda: model.Subgraphs(0))
        self.n_buffers = self._length(self._part("the buffer list", model.BuffersLength), 4,
                                      "the buffer list")
        n_tensors = self._length(self._part("the tensor list", sub.TensorsLength), 4,
                                 "the tensor list")
        tensors = [self._part(f"tensor {i}", lambda i=i: self._tensor(model, sub.Tensors(i), i))
                   for i in range(n_tensors)]
        n_codes = self._length(self._part("the operator codes", model.OperatorCodesLength), 4,
                               "the operator codes")
        opcodes = [self._part(f"operator code {i}",
                              lambda i=i: self._opcode(model.OperatorCodes(i)))
                   for i in range(n_codes)]
        n_ops = self._length(self._part("the operator list", sub.OperatorsLength), 4,
                             "the operator list")
        operators = [self._part(f"operator {k}",
                                lambda k=k: self._operator(sub.Operators(k), k, opcodes))
                     for k in range(n_ops)]
        n_meta = self._length(self._part("the metadata list", model.MetadataLength), 4,
                              "the metadata list")
        metadata = {}
        for i in range(n_meta):
            name, blob = self._part(f"metadata {i}", lambda i=i: self._metadata(model, i))
            metadata[name] = blob
        return self._part("subgraph 0", lambda: Graph(
            tensors=tensors, operators=operators,
            inputs=self._ints(sub, "Inputs", "the subgraph's"),
            outputs=self._ints(sub, "Outputs", "the subgraph's"),
            name=_text(sub.Name()), description=_text(model.Description()),
            metadata=metadata, version=int(model.Version())))

    def _buffer(self, model, index: int, where: str) -> bytes | None:
        if index == 0:
            return None
        if index >= self.n_buffers:
            raise ModelError(f"{where} refers to buffer {index}, but there are only "
                             f"{self.n_buffers}")
        buf = model.Buffers(index)
        if buf.Offset() > 1:                      # large models keep data after the flatbuffer
            start, size = buf.Offset(), buf.Size()
            if start + size > len(self.data):
                raise ModelError(f"{where}: buffer {index} lies past the end of the file "
                                 "(truncated?)")
            return bytes(self.data[start:start + size])
        if self._length(buf.DataLength(), 1, f"{where}: buffer {index}") == 0:
            return None
        return buf.DataAsNumpy().tobytes()

    def _tensor(self, model, t, i: int) -> Tensor:
        where = f"tensor {i}"
        dtype = TENSOR_TYPES.get(t.Type())
        if dtype is None:
            raise ModelError(f"{where} has unknown type code {t.Type()}")
        if t.Sparsity() is not None:
            raise ModelError(f"{where} ({printable(_text(t.Name()))}) is sparse; not supported")
        shape = tuple(self._ints(t, "Shape", where))
        sig = tuple(self._ints(t, "ShapeSignature", where)) if t.ShapeSignatureLength() else None
        quant = None
        q = t.Quantization()
        if q is not None and self._length(q.ScaleLength(), 4, f"{where} scales") > 0:
            n_zp = self._length(q.ZeroPointLength(), 8, f"{where} zero points")
            n_min = self._length(q.MinLength(), 4, f"{where} min")
            n_max = self._length(q.MaxLength(), 4, f"{where} max")
            zero_point = (np.array(q.ZeroPointAsNumpy(), dtype=np.int64) if n_zp
                          else np.zeros(q.ScaleLength(), np.int64))
            if n_zp == 1:            # one zero point for every channel, as TFLM reads it
                zero_point = np.full(q.ScaleLength(), zero_point[0], np.int64)
            quant = Quantization(
                scale=np.array(q.ScaleAsNumpy(), dtype=np.float32),
                zero_point=zero_point,
                axis=int(q.QuantizedDimension()),
                min=np.array(q.MinAsNumpy(), np.float32) if n_min else None,
                max=np.array(q.MaxAsNumpy(), np.float32) if n_max else None)
        raw = self._buffer(model, t.Buffer(), where)
        array = None
        if raw is not None:
            array = _decode(raw, dtype, shape, i)
        return Tensor(name=_text(t.Name()), shape=shape, dtype=dtype, quant=quant, data=array,
                      is_variable=bool(t.IsVariable()), shape_signature=sig)

    def _opcode(self, oc) -> tuple[str, str | None, int]:
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = BUILTIN_NAMES.get(code, f"UNKNOWN_{code}")
        custom = _text(oc.CustomCode()) if oc.CustomCode() is not None else None
        return name, custom, int(oc.Version())

    def _operator(self, o, k: int, opcodes) -> Operator:
        where = f"operator {k}"
        if o.OpcodeIndex() >= len(opcodes):
            raise ModelError(f"{where} refers to missing operator code {o.OpcodeIndex()}")
        name, custom, version = opcodes[o.OpcodeIndex()]
        options, options_type = {}, None
        if o.BuiltinOptionsType() != 0:
            options_type = OPTIONS_NAMES.get(o.BuiltinOptionsType())
            if options_type is None:
                raise ModelError(f"{where} ({name}) has unknown options type "
                                 f"{o.BuiltinOptionsType()}")
            table = o.BuiltinOptions()
            if table is None:
                raise ModelError(f"{where} ({name}) names {options_type} but has none")
            options = _read_options(table, options_type)
        n_custom = self._length(o.CustomOptionsLength(), 1, f"{where} custom options")
        return Operator(
            opcode=name, custom_code=custom, version=version,
            inputs=self._ints(o, "Inputs", where), outputs=self._ints(o, "Outputs", where),
            intermediates=self._ints(o, "Intermediates", where),
            options=options, options_type=options_type,
            custom_options=o.CustomOptionsAsNumpy().tobytes() if n_custom else None)

    def _metadata(self, model, i: int) -> tuple[str, bytes]:
        m = model.Metadata(i)
        return _text(m.Name()), self._buffer(model, m.Buffer(), f"metadata {i}") or b""


def _text(raw: bytes | None) -> str:
    """A flatbuffer string; bytes that are not UTF-8 become U+FFFD, never an exception."""
    return raw.decode("utf-8", "replace") if raw else ""


def _decode(raw: bytes, dtype: str, shape: tuple, index: int) -> np.ndarray:
    if dtype in ("int4", "string", "resource", "variant"):
        return np.frombuffer(raw, np.uint8).copy()      # kept as raw bytes
    if any(d < 0 for d in shape):
        raise ModelError(f"tensor {index}: constant with negative dimension in {list(shape)}")
    size = math.prod(shape)
    itemsize = np.dtype(dtype).itemsize
    if len(raw) != size * itemsize:
        raise ModelError(f"tensor {index}: buffer holds {len(raw):,} bytes, shape "
                         f"{list(shape)} {dtype} needs {size * itemsize:,}")
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(
        np.dtype(dtype)).reshape(shape)


def _read_options(table, options_type: str) -> dict:
    cls = getattr(_options_module(options_type), options_type)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out = {}
    for snake, camel in _option_fields(cls).items():
        if hasattr(obj, camel + "Length"):
            out[snake] = np.array(getattr(obj, camel + "AsNumpy")()) \
                if getattr(obj, camel + "Length")() else np.zeros(0, np.int32)
            continue
        value = getattr(obj, camel)()
        if isinstance(value, bytes):
            value = _text(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            raise ModelError(f"{options_type}.{snake}: nested option tables not supported")
        out[snake] = value
    return out


# ----------------------------------------------------------------------------- writing

def serialize(graph: Graph) -> bytes:
    """The IR as .tflite bytes (one subgraph, file identifier TFL3).

    A training model (augment's metadata) stores a per-channel tensor's zero points once
    when they are all equal (always, for int8 filters and int32 biases): TFLM reads a
    single zero point as every channel's (micro_allocator.cc, "As a space-saving
    optimization ..."), into the same per-channel array in SRAM, and 8 bytes a channel of
    flash are saved (over 150 KB in MCUNet's training model). Any other model keeps one per
    channel, which TF Lite's own interpreter requires."""
    b = flatbuffers.Builder(1 << 16)
    short_zero_points = TRAINING_KEY in graph.metadata

    buffers: list[bytes] = [b""]                       # buffer 0: the empty sentinel
    tensor_buffer = []
    for t in graph.tensors:
        if t.data is None:
            tensor_buffer.append(0)
        else:
            tensor_buffer.append(len(buffers))
            arr = t.data if t.data.dtype == np.uint8 and t.dtype in ("int4", "string") \
                else np.asarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<"))
            buffers.append(arr.tobytes())
    metadata_buffer = {}
    for name, blob in graph.metadata.items():
        metadata_buffer[name] = len(buffers)
        buffers.append(bytes(blob))

    buffer_offsets = []
    for blob in buffers:
        data_off = _aligned_bytes(b, blob) if blob else None
        tflite.BufferStart(b)
        if data_off is not None:
            tflite.BufferAddData(b, data_off)
        buffer_offsets.append(tflite.BufferEnd(b))

    tensor_offsets = [_write_tensor(b, t, tensor_buffer[i], short_zero_points)
                      for i, t in enumerate(graph.tensors)]

    opcode_keys: list[tuple] = []
    op_offsets = []
    for op in graph.operators:
        key = (op.opcode, op.custom_code if op.opcode == "CUSTOM" else None, op.version)
        if key not in opcode_keys:
            opcode_keys.append(key)
        op_offsets.append(_write_operator(b, op, opcode_keys.index(key)))

    name_off = b.CreateString(graph.name) if graph.name else None
    sub_tensors = _vector_of_tables(b, tensor_offsets)
    sub_ops = _vector_of_tables(b, op_offsets)
    sub_in = b.CreateNumpyVector(np.array(graph.inputs, np.int32))
    sub_out = b.CreateNumpyVector(np.array(graph.outputs, np.int32))
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sub_tensors)
    tflite.SubGraphAddInputs(b, sub_in)
    tflite.SubGraphAddOutputs(b, sub_out)
    tflite.SubGraphAddOperators(b, sub_ops)
    if name_off is not None:
        tflite.SubGraphAddName(b, name_off)
    subgraph = tflite.SubGraphEnd(b)

    code_offsets = []
    for name, custom, version in opcode_keys:
        custom_off = b.CreateString(custom) if custom is not None else None
        code = BUILTIN_CODES[name]
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        if custom_off is not None:
            tflite.OperatorCodeAddCustomCode(b, custom_off)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    meta_offsets = []
    for name, index in metadata_buffer.items():
        n_off = b.CreateString(name)
        tflite.MetadataStart(b)
        tflite.MetadataAddName(b, n_off)
        tflite.MetadataAddBuffer(b, index)
        meta_offsets.append(tflite.MetadataEnd(b))

    codes_vec = _vector_of_tables(b, code_offsets)
    subs_vec = _vector_of_tables(b, [subgraph])
    bufs_vec = _vector_of_tables(b, buffer_offsets)
    meta_vec = _vector_of_tables(b, meta_offsets) if meta_offsets else None
    desc_off = b.CreateString(graph.description) if graph.description else None
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, graph.version or 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subs_vec)
    tflite.ModelAddBuffers(b, bufs_vec)
    if desc_off is not None:
        tflite.ModelAddDescription(b, desc_off)
    if meta_vec is not None:
        tflite.ModelAddMetadata(b, meta_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def save(graph: Graph, path: str | os.PathLike) -> None:
    write_atomic(path, serialize(graph))


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ModelError(f"{path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _aligned_bytes(b: flatbuffers.Builder, blob: bytes) -> int:
    b.StartVector(1, len(blob), _BUFFER_ALIGN)
    b.head -= len(blob)
    b.Bytes[b.head:b.head + len(blob)] = blob
    return b.EndVector()


def _vector_of_tables(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _write_tensor(b: flatbuffers.Builder, t: Tensor, buffer_index: int,
                  short_zero_points: bool) -> int:
    name_off = b.CreateString(t.name)
    shape_off = b.CreateNumpyVector(np.array(t.shape, np.int32))
    sig_off = (b.CreateNumpyVector(np.array(t.shape_signature, np.int32))
               if t.shape_signature is not None else None)
    q_off = None
    if t.quant is not None:
        q = t.quant
        scale_off = b.CreateNumpyVector(np.asarray(q.scale, np.float32).ravel())
        zero_point = np.asarray(q.zero_point, np.int64).ravel()
        if short_zero_points and zero_point.size > 1 and np.all(zero_point == zero_point[0]):
            zero_point = zero_point[:1]
        zp_off = b.CreateNumpyVector(zero_point)
        min_off = b.CreateNumpyVector(np.asarray(q.min, np.float32)) if q.min is not None else None
        max_off = b.CreateNumpyVector(np.asarray(q.max, np.float32)) if q.max is not None else None
        tflite.QuantizationParametersStart(b)
        if min_off is not None:
            tflite.QuantizationParametersAddMin(b, min_off)
        if max_off is not None:
            tflite.QuantizationParametersAddMax(b, max_off)
        tflite.QuantizationParametersAddScale(b, scale_off)
        tflite.QuantizationParametersAddZeroPoint(b, zp_off)
        tflite.QuantizationParametersAddQuantizedDimension(b, q.axis)
        q_off = tflite.QuantizationParametersEnd(b)
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape_off)
    tflite.TensorAddType(b, TYPE_CODES[t.dtype])
    tflite.TensorAddBuffer(b, buffer_index)
    tflite.TensorAddName(b, name_off)
    if q_off is not None:
        tflite.TensorAddQuantization(b, q_off)
    if t.is_variable:
        tflite.TensorAddIsVariable(b, True)
    if sig_off is not None:
        tflite.TensorAddShapeSignature(b, sig_off)
    return tflite.TensorEnd(b)


def _write_options(b: flatbuffers.Builder, options_type: str, options: dict) -> int:
    module = _options_module(options_type)
    fields = _option_fields(getattr(module, options_type))
    unknown = set(options) - set(fields)
    if unknown:
        raise ModelError(f"{options_type} has no field(s) {sorted(unknown)}")
    vectors = {}
    for snake, value in options.items():
        if isinstance(value, np.ndarray):
            vectors[snake] = b.CreateNumpyVector(value.ravel())
        elif isinstance(value, str):
            vectors[snake] = b.CreateString(value)
    getattr(module, f"{options_type}Start")(b)
    for snake, value in options.items():
        if value is None:
            continue
        adder = getattr(module, f"{options_type}Add{fields[snake]}")
        adder(b, vectors.get(snake, value))
    return getattr(module, f"{options_type}End")(b)


def _write_operator(b: flatbuffers.Builder, op: Operator, opcode_index: int) -> int:
    opts_off = _write_options(b, op.options_type, op.options) if op.options_type else None
    custom_off = (b.CreateNumpyVector(np.frombuffer(op.custom_options, np.uint8))
                  if op.custom_options else None)
    in_off = b.CreateNumpyVector(np.array(op.inputs, np.int32))
    out_off = b.CreateNumpyVector(np.array(op.outputs, np.int32))
    inter_off = (b.CreateNumpyVector(np.array(op.intermediates, np.int32))
                 if op.intermediates else None)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, in_off)
    tflite.OperatorAddOutputs(b, out_off)
    if opts_off is not None:
        tflite.OperatorAddBuiltinOptionsType(b, OPTIONS_CODES[op.options_type])
        tflite.OperatorAddBuiltinOptions(b, opts_off)
    if custom_off is not None:
        tflite.OperatorAddCustomOptions(b, custom_off)
    if inter_off is not None:
        tflite.OperatorAddIntermediates(b, inter_off)
    return tflite.OperatorEnd(b)
