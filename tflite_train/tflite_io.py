"""Read a .tflite flatbuffer into the IR and write the IR back.

Reading uses the `tflite` package's generated accessors; writing uses its generated builder
functions with `flatbuffers.Builder`. Builtin options are handled generically by reflection
over the generated classes, so any builtin operator round-trips, not only the ones we run.
"""
from __future__ import annotations

import importlib
import os
import re
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

from .errors import ModelError
from .ir import TENSOR_TYPES, TYPE_CODES, Graph, Operator, Quantization, Tensor

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
    """Load a .tflite file. Every problem is a ModelError with a one-line message."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a .tflite file")
    return parse(path.read_bytes(), str(path))


def parse(data: bytes, what: str = "model") -> Graph:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{what}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    try:
        return _parse(data)
    except ModelError as exc:
        raise ModelError(f"{what}: {exc}") from exc
    except Exception as exc:  # a malformed flatbuffer fails in the generated accessors
        raise ModelError(f"{what}: malformed or truncated .tflite "
                         f"({type(exc).__name__}: {exc})") from exc


def _buffer_bytes(model, data: bytes, index: int) -> bytes | None:
    if index <= 0 or index >= model.BuffersLength():
        return None
    buf = model.Buffers(index)
    if buf.Offset() > 1:                      # large models keep data after the flatbuffer
        start, size = buf.Offset(), buf.Size()
        if start + size > len(data):
            raise ModelError(f"buffer {index} lies past the end of the file (truncated?)")
        return bytes(data[start:start + size])
    if buf.DataLength() == 0:
        return None
    raw = buf.DataAsNumpy()
    return raw.tobytes()


def _parse(data: bytes) -> Graph:
    model = tflite.Model.GetRootAs(data, 0)
    n_sub = model.SubgraphsLength()
    if n_sub == 0:
        raise ModelError("the model has no subgraph")
    if n_sub > 1:
        raise ModelError(f"the model has {n_sub} subgraphs; only single-subgraph models "
                         "(no control flow) are supported")
    sub = model.Subgraphs(0)

    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        dtype = TENSOR_TYPES.get(t.Type())
        if dtype is None:
            raise ModelError(f"tensor {i} has unknown type code {t.Type()}")
        if t.Sparsity() is not None:
            raise ModelError(f"tensor {i} ({t.Name().decode()}) is sparse; not supported")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = (tuple(int(s) for s in t.ShapeSignatureAsNumpy())
               if t.ShapeSignatureLength() else None)
        quant = None
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength())
            quant = Quantization(
                scale=np.array(q.ScaleAsNumpy(), dtype=np.float32),
                zero_point=np.array(zp, dtype=np.int64),
                axis=int(q.QuantizedDimension()),
                min=np.array(q.MinAsNumpy(), np.float32) if q.MinLength() else None,
                max=np.array(q.MaxAsNumpy(), np.float32) if q.MaxLength() else None)
        raw = _buffer_bytes(model, data, t.Buffer())
        array = None
        if raw is not None:
            array = _decode(raw, dtype, shape, i)
        tensors.append(Tensor(name=t.Name().decode("utf-8", "replace") if t.Name() else "",
                              shape=shape, dtype=dtype, quant=quant, data=array,
                              is_variable=bool(t.IsVariable()), shape_signature=sig))

    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = BUILTIN_NAMES.get(code, f"UNKNOWN_{code}")
        custom = oc.CustomCode().decode() if oc.CustomCode() is not None else None
        opcodes.append((name, custom, oc.Version()))

    operators = []
    for k in range(sub.OperatorsLength()):
        o = sub.Operators(k)
        if o.OpcodeIndex() >= len(opcodes):
            raise ModelError(f"operator {k} refers to missing operator code {o.OpcodeIndex()}")
        name, custom, version = opcodes[o.OpcodeIndex()]
        options, options_type = {}, None
        if o.BuiltinOptionsType() != 0:
            options_type = OPTIONS_NAMES.get(o.BuiltinOptionsType())
            if options_type is None:
                raise ModelError(f"operator {k} ({name}) has unknown options type "
                                 f"{o.BuiltinOptionsType()}")
            options = _read_options(o.BuiltinOptions(), options_type)
        custom_options = o.CustomOptionsAsNumpy().tobytes() if o.CustomOptionsLength() else None
        operators.append(Operator(
            opcode=name, custom_code=custom, version=version,
            inputs=[int(x) for x in o.InputsAsNumpy()] if o.InputsLength() else [],
            outputs=[int(x) for x in o.OutputsAsNumpy()] if o.OutputsLength() else [],
            intermediates=([int(x) for x in o.IntermediatesAsNumpy()]
                           if o.IntermediatesLength() else []),
            options=options, options_type=options_type, custom_options=custom_options))

    n = len(tensors)
    for k, op in enumerate(operators):
        for t in op.inputs + op.outputs:
            if t >= n:
                raise ModelError(f"operator {k} ({op.kind}) refers to tensor {t}, "
                                 f"but there are only {n}")

    metadata = {}
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        metadata[m.Name().decode()] = _buffer_bytes(model, data, m.Buffer()) or b""

    return Graph(
        tensors=tensors, operators=operators,
        inputs=[int(x) for x in sub.InputsAsNumpy()] if sub.InputsLength() else [],
        outputs=[int(x) for x in sub.OutputsAsNumpy()] if sub.OutputsLength() else [],
        name=sub.Name().decode() if sub.Name() else "",
        description=model.Description().decode() if model.Description() else "",
        metadata=metadata, version=model.Version())


def _decode(raw: bytes, dtype: str, shape: tuple, index: int) -> np.ndarray:
    if dtype in ("int4", "string", "resource", "variant"):
        return np.frombuffer(raw, np.uint8).copy()      # kept as raw bytes
    arr = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
    size = int(np.prod(shape, dtype=np.int64))
    if arr.size != size:
        raise ModelError(f"tensor {index}: buffer holds {arr.size} elements, shape {shape} "
                         f"needs {size}")
    return arr.astype(np.dtype(dtype)).reshape(shape)


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
            value = value.decode()
        elif value is not None and not isinstance(value, (int, float, bool)):
            raise ModelError(f"{options_type}.{snake}: nested option tables not supported")
        out[snake] = value
    return out


# ----------------------------------------------------------------------------- writing

def serialize(graph: Graph) -> bytes:
    """The IR as .tflite bytes (one subgraph, file identifier TFL3)."""
    b = flatbuffers.Builder(1 << 16)

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

    tensor_offsets = [_write_tensor(b, t, tensor_buffer[i]) for i, t in enumerate(graph.tensors)]

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


def _write_tensor(b: flatbuffers.Builder, t: Tensor, buffer_index: int) -> int:
    name_off = b.CreateString(t.name)
    shape_off = b.CreateNumpyVector(np.array(t.shape, np.int32))
    sig_off = (b.CreateNumpyVector(np.array(t.shape_signature, np.int32))
               if t.shape_signature is not None else None)
    q_off = None
    if t.quant is not None:
        q = t.quant
        scale_off = b.CreateNumpyVector(np.asarray(q.scale, np.float32).ravel())
        zp_off = b.CreateNumpyVector(np.asarray(q.zero_point, np.int64).ravel())
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
