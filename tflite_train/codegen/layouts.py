"""Frozen 1x1 filters stored a second time in flash, pre-widened as the Cortex-M DSP kernels
consume them (tt_forward.h: tt_conv2d_wide_s8).

The DSP pointwise product (micro_kernels/src/tt_fwd_dsp.c) multiplies blocks of 6 staged
pixels by one filter row at a time; for every group of four input channels it loads the
row's int8 word and sign-extends it into two int16 pairs (LDR, 2 SXTB16) in every block.
A frozen filter never changes, so the generated program can keep those pairs in flash and
load them by one LDRD: 2 instructions fewer per group and block (24 MACs in blocks of 6, 16
in the blocks of 4 of layers of 132-256 channels). The int8 filter stays (the kernel's
other paths, `--engine c`, TFLM and the portable build read it), so each chosen layer costs
2 bytes of flash a weight more: layers are chosen by instructions saved per byte, up to
BUDGET bytes. Trained filters (SRAM, changed every step) keep int8.

Two other forms go in the same `wide` argument, outside BUDGET (a few KB, many instructions a
byte): the 8- and 16-channel layers' row records (`records`), and a stream's stem its filter
packed and widened as the DSP im2col path makes it in every row call (`stem_wide`).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..runtime import stream_args
from ..runtime.kernel_calls import In, KernelCall

KERNEL = "tt_conv2d_wide_s8"
# a stream's kernel -> its form with pre-widened filters (the packed C function, the
# `wide` filters last in its flat arguments: runtime/stream_args.py), and where its 1x1 sides find
# (parameters, multiplier, shift, input dims, filter dims, filter, bias, output dims);
# the three-layer stream's first layer only when it is 1x1
STREAMS = {"tt_pointwise_depthwise_s8": "tt_pointwise_depthwise_wide_s8",
           "tt_pointwise_depthwise_packed_s8": "tt_pointwise_depthwise_wide_s8",
           "tt_conv_depthwise_pointwise_packed_s8": "tt_conv_depthwise_pointwise_wide_s8",
           "tt_conv_depthwise_pointwise_chain_s8": "tt_conv_depthwise_pointwise_chain_wide_s8"}
def _side(layer: str, x_dims: str, y_dims: str) -> tuple[str, ...]:
    return (layer, f"{layer}_multiplier", f"{layer}_shift", x_dims, f"{layer}_filter_dims",
            f"{layer}_filter", f"{layer}_bias", y_dims)


# side -> (its arguments' names, the dims whose rows it is called once for: a stream's
# depthwise output, one call a row of it; the chain's second stream's first layer `b` reads
# the first's output rows from a ring of one row, one call a row of its own output)
_PAIR = {"a": (_side("pw", "input_dims", "mid_dims"), "output_dims")}
SIDES = {"tt_pointwise_depthwise_s8": _PAIR, "tt_pointwise_depthwise_packed_s8": _PAIR,
         "tt_conv_depthwise_pointwise_packed_s8": {
             "a": (_side("a", "input_dims", "mid_dims"), "dw_output_dims"),
             "pw": (_side("pw", "dw_output_dims", "output_dims"), "dw_output_dims")},
         "tt_conv_depthwise_pointwise_chain_s8": {
             "a": (_side("a", "input_dims", "mid_dims"), "mid_dims"),
             "pw": (_side("pw", "dw_output_dims", "output_dims"), "dw_output_dims"),
             "b": (_side("b", "output_dims", "b_mid_dims"), "b_mid_dims"),
             "b_pw": (_side("b_pw", "b_dw_output_dims", "b_output_dims"), "b_dw_output_dims")}}
# flash the pre-widened filters may add: MCUNet's program is about 700 KB of the board's
# 1 MB, MobileNetV2's 475 KB; this keeps both below 870 KB. 128 KB left out MCUNet's
# blocks.10.pointwise2 (240 -> 96 at 4x4, 45 KB pre-widened, 1.0 instructions saved a byte:
# 46 K a step measured on the rig); the next ones (0.75 a byte, 72-180 KB each) would take
# the program past 940 KB of the 1 MB for 55 K each, and stay out by MIN_SAVED_PER_BYTE
BUDGET = 176 * 1024
# below this many instructions saved a byte a layer is not worth its flash (a 4x4 map's
# layer of more than 256 channels saves about 0.75, MCUNet's 8x8 ones 2.5-4)
MIN_SAVED_PER_BYTE = 1.0
# the row records (`records`) are not counted in BUDGET: only 8- and 16-channel frozen
# layers have them, a few KB (MobileNetV2's expansions 17 KB), at 10-80 instructions a byte

# tt_fwd_dsp.c's choices the estimate follows: the staging buffer's bytes; columns of up to
# 128 channels in blocks of 6 pixels (8 of them fit), up to 256 in blocks of 4, more in
# chunks of the channels, blocks of 6 then of 4; tt_dsp_rows6w's own widening once a call
# (layers of <= 40 channels that stage 4 or more blocks a call)
STAGE_BYTES = 2048
RUN_TIME_WIDE_MAX = 40


def widened(filt: np.ndarray) -> np.ndarray:
    """int8 filter [co, 1, 1, ci] (ci a multiple of 4) -> int16 [co, ci]: per group of four
    weights w0..w3, [w0, w2, w1, w3] (SXTB16's even and odd lanes, the words SMLAD pairs
    with the staged inputs)."""
    co, ci = filt.shape[0], filt.shape[-1]
    if filt.shape[1:3] != (1, 1) or ci % 4:
        raise ValueError(f"internal: no pre-widened layout for a {filt.shape} filter")
    groups = filt.reshape(co, ci // 4, 4).astype(np.int16)
    return np.ascontiguousarray(groups[:, :, [0, 2, 1, 3]].reshape(co, ci))


# the widths whose DSP pointwise product streams its rows from records (tt_fwd_dsp.c's
# column kernels: tt_dsp_col8, col16, their 8-rows-a-loop and one-shift forms)
RECORD_WIDTHS = (8, 16)
# what building and testing one row's record costs in every call without them
# (cols_records' 27-39 instructions, rows_one_all's test, and for the one-shift form
# records_e's test and scaling): the ranking's estimate, not a measurement
RECORD_ROW_INSTRUCTIONS = 40
# the one-shift form (tt_fwd_dsp.c: tt_dsp_col8x16_e, tt_dsp_col16x8_e, records_e): every
# row's e in [E - 7, E - 1], the kernels' rows a loop (16 of 8 elements, 8 of 16)
ONE_SHIFT_E = 11
ONE_SHIFT_ROWS = {8: 16, 16: 8}


def one_shift(ci: int, co: int, e: np.ndarray, bias: np.ndarray, input_offset: int,
              output_offset: int) -> np.ndarray | None:
    """Each row's scale s = E - e of the one-shift records (tt_fwd_dsp.c: records_e's
    condition), or None where a row or the layer does not qualify: output offset -128, co a
    multiple of the kernel's rows a loop, e in [E - 7, E - 1], and the scaled sums
    2^(s + 1) (|bias| + ci (128 + |input_offset|) 128) below 2^31."""
    if output_offset != -128 or co % ONE_SHIFT_ROWS[ci]:
        return None
    s = ONE_SHIFT_E - e
    sums = ci * (128 + abs(int(input_offset))) * 128
    if ((s < 1) | (s > 7)).any() or ((2 * np.abs(bias) + 2 * sums) << s >= 1 << 31).any():
        return None
    return s


def records(filt: np.ndarray, bias, multiplier, shift, output_offset: int,
            input_offset: int) -> np.ndarray:
    """A frozen 1x1 filter [co, 1, 1, ci] of 8 or 16 input channels (co even) as the DSP
    kernel's row records (tt_fwd_dsp.c: cols_records), as int16 for the `wide` argument:
    per row the words [2 bias, the weights doubled in `widened`'s order, multiplier,
    (2 output_offset + 1) 2^(e - 1), e = -shift], bit 8 set in the last row's e. Only for
    layers whose every row requantizes in the assembly (in_assembly(...) == 1). Where the
    one-shift kernels take the layer (one_shift), the records are already in their form,
    as records_e would make them in every call: the first two words and the weights times
    2^s, s = E - e (each int16 lane on its own), c' = -255 2^(E - 1) + 2^(s - 1), and a
    last word 0, 256 in the last row (e's byte 0 tells the kernel the form)."""
    co, ci = filt.shape[0], filt.shape[-1]
    if ci not in RECORD_WIDTHS or co % 2:
        raise ValueError(f"internal: no row records for a {filt.shape} filter")
    e = -np.asarray(shift, np.int64)
    b = np.zeros(co, np.int64) if bias is None else np.asarray(bias, np.int64)
    s = one_shift(ci, co, e, b, input_offset, output_offset)
    scale = np.zeros(co, np.int64) if s is None else s
    words = np.empty((co, ci // 2 + 4), np.int64)
    words[:, 0] = 2 * b << scale
    lanes = (2 * widened(filt).astype(np.int64) << scale[:, None]) & 0xFFFF   # low first
    words[:, 1:ci // 2 + 1] = lanes[:, 0::2] | lanes[:, 1::2] << 16
    words[:, -3] = np.asarray(multiplier, np.int64)
    if s is None:
        words[:, -2] = (2 * output_offset + 1) * (1 << (e - 1))
        words[:, -1] = e
    else:
        words[:, -2] = -255 * (1 << (ONE_SHIFT_E - 1)) + (1 << (s - 1))
        words[:, -1] = 0
    words[-1, -1] |= 256
    return np.ascontiguousarray((words & 0xFFFFFFFF).astype(np.uint32).view(np.int16))


# a stem's packed filter (tt_fwd_conv.c: stem_pack_filter): 28 values a row
STEM_VALUES = 28
# what a stem's im2col row call spends on its filter in every call (trailing_zero_rows,
# stem_packs, the packing, rows_one, the widening: 80 K over MobileNetV2's 64 row calls,
# measured by dwfwd16 for the widening alone): the ranking's estimate
STEM_CALL_INSTRUCTIONS = 1250


def stem_packs(filt: np.ndarray) -> bool:
    """Whether a filter is a stem the DSP im2col packs (tt_fwd_conv.c: stem_packs after
    trailing_zero_rows): [co, 4, 4, 3], its last row zero in every channel and its third not
    (3 rows of taps left), and those rows' last tap zero."""
    return filt.shape[1:] == (4, 4, 3) and not filt[:, 3].any() and bool(filt[:, 2].any()) \
        and not filt[:, :3, 3].any()


def stem_wide(filt: np.ndarray) -> np.ndarray:
    """A stem's filter (stem_packs) as dsp_im2col's `prewide` takes it, int16 for the
    `wide` argument: packed [co, 28] int8 (stem_pack_filter: rows 0-2's bytes 0-7, then
    [row 1's byte 8, 0, row 0's, row 2's]), zero-padded to 8 bytes, then those rows widened
    (`widened`'s order)."""
    if not stem_packs(filt):
        raise ValueError(f"internal: no packed stem for a {filt.shape} filter")
    co = filt.shape[0]
    rows = filt.reshape(co, 4, 12)
    packed = np.zeros((co, STEM_VALUES), np.int8)
    for r in range(3):
        packed[:, 8 * r:8 * r + 8] = rows[:, r, :8]
    packed[:, 24], packed[:, 26], packed[:, 27] = rows[:, 1, 8], rows[:, 0, 8], rows[:, 2, 8]
    head = np.zeros(-(-co * STEM_VALUES // 8) * 8, np.int8)
    head[:packed.size] = packed.ravel()
    return np.concatenate([head.view(np.int16),
                           widened(packed.reshape(co, 1, 1, STEM_VALUES)).ravel()])


def in_assembly(multiplier, shift, bias, p) -> float:
    """The share of output channels that requantize by the one-multiply form into int8's
    whole range (tt_fwd_dsp.h: tt_dsp_rq_init, tt_dsp_bias_bounded; the kernel's own test,
    per row, decides): only their rows are read pre-widened, the others' (dead channels:
    shifts past -21, biases at int32's ends) from the int8 filter."""
    if not (p.act_min == -128 and p.act_max == 127 and -256 <= p.output_offset <= 255):
        return 0.0
    m, s = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    ok = (m >= 1 << 30) & (s <= -1) & (s >= -21)
    if bias is not None:
        ok &= np.abs(np.asarray(bias, np.int64)) < 1 << 28
    return float(ok.mean())


def saved_instructions(pixels: int, ci: int, co: int) -> int:
    """Instructions a call saves, estimated from the kernel's loop counts (the choice's
    ranking, not a measurement): 2 a group of four channels, row and block of pixels, or,
    where tt_dsp_rows6w widens the rows once a call at run time, that widening (6 a group
    and row per call)."""
    if ci % 4 or ci <= 16:                       # 8 and 16 channels: the column kernels
        return 0
    groups = ci // 4
    if 2 * ci * 8 <= STAGE_BYTES:
        blocks, per_call = pixels // 6, STAGE_BYTES // (12 * ci)
        if per_call >= 4 and ci <= RUN_TIME_WIDE_MAX:
            return 6 * groups * co * -(-blocks // per_call)
    elif 2 * ci * 4 <= STAGE_BYTES:
        blocks = pixels // 4
    else:
        blocks = pixels // 6 + (pixels % 6 >= 4)
    return 2 * groups * co * blocks


def _tensor(graph: Graph, k: int, arg) -> int | None:
    """The tensor a call's argument names (an In: operator k's input), or None."""
    if isinstance(arg, In) and not arg.value:
        return graph.operators[k].inputs[arg.k]
    return getattr(arg, "tensor", None)           # codegen.program.TensorArg


def _saved(graph: Graph, k: int, layer, rows: int) -> tuple[float, int, int] | None:
    """(instructions saved a byte, bytes, filter tensor) of pre-widening a layer that runs in
    `rows` calls of equal pixels (`layer`: its parameters, multiplier, shift, input dims,
    filter dims, filter, bias, output dims): a 1x1 one (stride 1, no padding; its row records
    for 8 or 16 input channels) or a stem (_stem: packed and widened, stem_wide), or None."""
    p, mult, shift, x_dims, f_dims, filt, bias, y_dims = layer
    t = _tensor(graph, k, filt)
    if t is None or t < 0 or not graph.tensors[t].is_constant:
        return None
    if _stem(graph, k, layer, t):
        # packed and widened once: outside BUDGET, as the records
        nbytes = stem_wide(graph.tensors[t].data).nbytes
        return (rows * STEM_CALL_INSTRUCTIONS / nbytes, 0, t)
    if (f_dims.h, f_dims.w, p.stride_h, p.stride_w, p.pad_top, p.pad_left) != (1, 1, 1, 1, 0, 0) \
            or (x_dims.h, x_dims.w) != (y_dims.h, y_dims.w):
        return None
    # a trained bias's initial value (the kernel decides by the values it is called with)
    b, _ = _bias(graph, k, bias)
    share = in_assembly(mult, shift, b, p)
    rec = _record_bias(graph, k, layer)
    if rec is not False:
        # every call's records built once: rows * (ci / 2 + 4) words, outside BUDGET (0 B
        # here): a few KB that would push a pre-widened filter out of it
        nbytes = 4 * f_dims.n * (f_dims.c // 2 + 4)
        return (rows * f_dims.n * RECORD_ROW_INSTRUCTIONS / nbytes, 0, t)
    pixels = y_dims.n * y_dims.h * y_dims.w
    saved = share * rows * saved_instructions(pixels // rows, f_dims.c, f_dims.n)
    nbytes = 2 * f_dims.n * f_dims.c
    return (saved / nbytes, nbytes, t) if saved else None


def _stem(graph: Graph, k: int, layer, t: int) -> bool:
    """Whether a frozen filter (tensor t) is a stem that dsp_im2col may be given packed and
    widened: it packs (stem_packs), undilated, a frozen bias, every row requantized in the
    assembly (the kernel trusts both)."""
    p, mult, shift, _, _, _, bias, _ = layer
    if (p.dilation_h, p.dilation_w) != (1, 1) or not stem_packs(graph.tensors[t].data):
        return False
    b, frozen = _bias(graph, k, bias)
    return frozen and in_assembly(mult, shift, b, p) == 1.0


def _bias(graph: Graph, k: int, bias) -> tuple[np.ndarray | None, bool]:
    """A call's bias argument as (its values or None, whether they are frozen): a tensor's
    data (frozen if constant; a trained one's initial value), none (-1), an array the call
    holds, or anything else (no values, not known frozen)."""
    tb = _tensor(graph, k, bias)
    if tb is not None:
        return (graph.tensors[tb].data, graph.tensors[tb].is_constant) if tb >= 0 else (None, True)
    if isinstance(bias, np.ndarray) or bias is None:
        return bias, True
    return None, False


def _record_bias(graph: Graph, k: int, layer):
    """The bias (an array or None) a 1x1 layer's row records are made with, or False where
    it takes none: 8 or 16 input channels, an even number of output channels, a frozen bias
    (the records hold it), every row requantized in the assembly (the kernel trusts them)."""
    p, mult, shift, _, f_dims, _, bias, _ = layer
    if f_dims.c not in RECORD_WIDTHS or f_dims.n % 2:
        return False
    b, frozen = _bias(graph, k, bias)
    return b if frozen and in_assembly(mult, shift, b, p) == 1.0 else False


def candidates(graph: Graph, k: int, call: KernelCall | None
               ) -> dict[str, tuple[float, int, int]]:
    """Side -> (instructions saved a byte, bytes, filter tensor) of pre-widening operator k's
    filter ("": a tt_conv2d_s8 of a frozen 1x1 filter at stride 1 without padding, the blocks
    of 6 pixels) or a stream's sides (SIDES; "a": its first layer, a 1x1 one or a stem, one
    call a depthwise output row or a mid row; "pw": its projection, one call an output row;
    the chain's "b" and "b_pw": its second block's expansion and projection)."""
    out = {}
    for side, (layer, rows) in _layers(call).items():
        c = _saved(graph, k, layer, rows)
        if c:
            out[side] = c
    return out


def _layers(call: KernelCall | None) -> dict[str, tuple[list, int]]:
    """Side -> (its 1x1 layer's arguments as _saved takes them, the calls a step it runs
    in) of a call candidates considers."""
    if call is None:
        return {}
    if call.name == "tt_conv2d_s8":
        return {"": ([call.args[i] for i in (0, 1, 2, 3, 5, 6, 7, 8)], 1)}
    if call.name not in SIDES:
        return {}
    args = stream_args.named(call.name, call.args)
    return {side: ([args[n] for n in names], args[rows].h)
            for side, (names, rows) in SIDES[call.name].items()}


def _wide_call(graph: Graph, k: int, call: KernelCall, sides: dict[str, int]) -> KernelCall:
    """`call` (operator k's) in its form reading the chosen sides' filters (side -> tensor)
    pre-widened, or, for 8 or 16 input channels, their row records."""
    layers = _layers(call)

    def wide(side):
        if side not in sides:
            return None
        filt = graph.tensors[sides[side]].data
        layer = layers[side][0]
        if filt.shape[1:3] != (1, 1):
            return stem_wide(filt)
        b = _record_bias(graph, k, layer)
        if b is False:
            return widened(filt)
        return records(filt, b, layer[1], layer[2], layer[0].output_offset,
                       layer[0].input_offset)
    if call.name == "tt_conv2d_s8":
        return KernelCall(KERNEL, [*call.args[:7], wide(""), *call.args[7:]]).check()
    args = list(call.args)
    if call.name == "tt_pointwise_depthwise_s8":
        args.append(None)                         # no pack lent
    if call.name.startswith("tt_pointwise"):
        extra = [wide("a")]
    elif call.name == "tt_conv_depthwise_pointwise_chain_s8":
        extra = [wide(side) for side in stream_args.CHAIN_WIDE]
    else:
        extra = [wide("a"), wide("pw")]
    return KernelCall(STREAMS[call.name], [*args, *extra]).check()


def choose(graph: Graph, calls: dict[int, KernelCall | None], budget: int = BUDGET
           ) -> dict[int, KernelCall]:
    """Operator -> its call reading pre-widened filters (tt_conv2d_wide_s8, a stream's
    _wide_s8 form), for the layers that save the most instructions a byte (at least
    MIN_SAVED_PER_BYTE) within `budget` bytes."""
    ranked = sorted(((c, k, side) for k, call in calls.items()
                     for side, c in candidates(graph, k, call).items()
                     if c[0] >= MIN_SAVED_PER_BYTE), key=lambda c: (-c[0][0], c[1], c[2]))
    chosen: dict[int, dict[str, int]] = {}
    used = 0
    for (_, nbytes, t), k, side in ranked:
        if used + nbytes > budget:
            continue
        chosen.setdefault(k, {})[side] = t
        used += nbytes
    return {k: _wide_call(graph, k, calls[k], sides) for k, sides in chosen.items()}
