"""The streams' arguments (tt_stream.h) as the planner sees them, and as C takes them.

A stream kernel takes a few pointers: one tt_stream_layer per layer (its parameters,
quantization, filter, pre-widened filter, bias), one tt_stream_dims (the shapes) and its
buffers. The planner (codegen/program.py, layouts.py, dw_pack.py) and the tests describe a
stream call as one flat list of those values, each named as before the grouping (`a`,
`a_multiplier`, ..., `input_dims`, `mid_dims`, ..., `output`, `window`, `pack`): the flat
signature here. `grouped` turns such a list into the C call's arguments, the one place that
knows which value is which struct's field; the code generator writes the structs as static
const initialisers (`c_groups`), the host calls build them as ctypes structures
(`host_args`), a rig harness declares them next to the call.
"""
from __future__ import annotations

import ctypes as C
from dataclasses import dataclass

LAYER_FIELDS = ("params", "multiplier", "shift", "filter_dims", "filter", "wide", "bias")
DIMS_FIELDS = ("input", "mid", "dw_output", "output")


@dataclass(frozen=True)
class Group:
    """One struct argument of a stream: its C type and, for each field, the flat argument
    it takes (None: NULL)."""
    ctype: str                                  # tt_stream_layer or tt_stream_dims
    fields: tuple[tuple[str, str | None], ...]


def _layer_flat(prefix: str, input_dims: str | None, source: bool = False) -> list[str]:
    """The flat declarations of one layer (the first layer's carry the stream's input)."""
    p = prefix
    out = [f"const tt_fwd_conv_params *{p}", f"const int32_t *{p}_multiplier",
           f"const int8_t *{p}_shift"]
    if input_dims is not None:
        out.append(f"const tt_fwd_dims *{input_dims}")
    if input_dims == "input_dims":
        out.append("tt_row_source *input" if source else "const int8_t *input")
    return out + [f"const tt_fwd_dims *{p}_filter_dims", f"const int8_t *{p}_filter",
                  f"const int32_t *{p}_bias"]


def _layer(prefix: str, wide: bool) -> Group:
    names = {"params": prefix, "wide": f"{prefix}_wide" if wide else None}
    return Group("tt_stream_layer", tuple((f, names.get(f, f"{prefix}_{f}"))
                                          for f in LAYER_FIELDS))


def _dims(prefix: str, input_dims: str, dw_output: str) -> Group:
    return Group("tt_stream_dims", (("input", input_dims), ("mid", f"{prefix}mid_dims"),
                                    ("dw_output", dw_output), ("output", f"{prefix}output_dims")))


def _pair(name: str, pack: bool, wide: bool):
    flat = [*_layer_flat("pw", "input_dims"), *_layer_flat("dw", "mid_dims"),
            "const tt_fwd_dims *output_dims", "int8_t *output", "int8_t *window"]
    flat += ["int8_t *pack"] if pack else []
    flat += ["const int16_t *pw_wide"] if wide else []
    c = [("pw", _layer("pw", wide)), ("dw", _layer("dw", False)),
         ("dims", _dims("", "input_dims", "output_dims")), "input", "output", "window"]
    return name, flat, c + (["pack"] if pack else [])


def _first_stream(source: bool) -> list[str]:
    return [*_layer_flat("a", "input_dims", source), *_layer_flat("dw", "mid_dims"),
            *_layer_flat("pw", "dw_output_dims"), "const tt_fwd_dims *output_dims"]


def _block(name: str, source: bool, wide: bool):
    flat = [*_first_stream(source), "int8_t *output", "int8_t *window", "int8_t *pack"]
    flat += ["const int16_t *a_wide", "const int16_t *pw_wide"] if wide else []
    c = [("a", _layer("a", wide)), ("dw", _layer("dw", False)), ("pw", _layer("pw", wide)),
         ("dims", _dims("", "input_dims", "dw_output_dims")), "input", "output", "window",
         "pack"]
    return name, flat, c


# the chain's layers that may read pre-widened filters or row records (`wide`), in the
# order its _wide_s8 forms' flat lists end with them: the stem's packed filter (`a`) and
# the 1x1 layers (`pw`, `b`, `b_pw`)
CHAIN_WIDE = ("a", "pw", "b", "b_pw")


def _chain(name: str, source: bool, wide: bool):
    flat = [*_first_stream(source), "int8_t *window", "int8_t *pack", "int8_t *ring",
            *_layer_flat("b", None), *_layer_flat("b_dw", "b_mid_dims"),
            *_layer_flat("b_pw", "b_dw_output_dims"), "const tt_fwd_dims *b_output_dims",
            "int8_t *b_output", "int8_t *b_window", "int8_t *b_pack"]
    flat += [f"const int16_t *{n}_wide" for n in CHAIN_WIDE] if wide else []
    c = [("a", _layer("a", wide)), ("dw", _layer("dw", False)), ("pw", _layer("pw", wide)),
         ("dims", _dims("", "input_dims", "dw_output_dims")), "input", "window", "pack", "ring",
         ("b", _layer("b", wide)), ("b_dw", _layer("b_dw", False)),
         ("b_pw", _layer("b_pw", wide)), ("b_dims", _dims("b_", "output_dims", "b_dw_output_dims")),
         "b_output", "b_window", "b_pack"]
    return name, flat, c


# name -> (flat declarations, the C parameters: a name of the flat list or (name, Group))
# The _wide_s8 names are the planner's (layouts.py): a packed stream given pre-widened 1x1
# filters, whose flat list ends with them; C has one function for both, whose structs carry
# `wide` (NULL where not widened).
STREAMS = {name: (tuple(flat), tuple(c)) for name, flat, c in (
    _pair("tt_pointwise_depthwise_s8", False, False),
    _pair("tt_pointwise_depthwise_packed_s8", True, False),
    _pair("tt_pointwise_depthwise_wide_s8", True, True),
    _block("tt_conv_depthwise_pointwise_packed_s8", False, False),
    _block("tt_conv_depthwise_pointwise_packed_source_s8", True, False),
    _block("tt_conv_depthwise_pointwise_wide_s8", False, True),
    _block("tt_conv_depthwise_pointwise_packed_source_wide_s8", True, True),
    _chain("tt_conv_depthwise_pointwise_chain_s8", False, False),
    _chain("tt_conv_depthwise_pointwise_chain_source_s8", True, False),
    _chain("tt_conv_depthwise_pointwise_chain_wide_s8", False, True),
    _chain("tt_conv_depthwise_pointwise_chain_source_wide_s8", True, True))}


C_FUNCTION = {"tt_pointwise_depthwise_wide_s8": "tt_pointwise_depthwise_packed_s8",
              "tt_conv_depthwise_pointwise_wide_s8": "tt_conv_depthwise_pointwise_packed_s8",
              "tt_conv_depthwise_pointwise_packed_source_wide_s8":
                  "tt_conv_depthwise_pointwise_packed_source_s8",
              "tt_conv_depthwise_pointwise_chain_wide_s8": "tt_conv_depthwise_pointwise_chain_s8",
              "tt_conv_depthwise_pointwise_chain_source_wide_s8":
                  "tt_conv_depthwise_pointwise_chain_source_s8"}


def c_function(name: str) -> str:
    """The C function a call of kernel `name` is written as."""
    return C_FUNCTION.get(name, name)


def flat_names(name: str) -> list[str]:
    """The names of stream `name`'s flat arguments, in order."""
    return [d.replace("*", " ").split()[-1] for d in STREAMS[name][0]]


def named(name: str, values: list) -> dict:
    """Stream `name`'s flat argument values by name (the planner's lists: no index into
    them outside this module)."""
    names = flat_names(name)
    if len(names) != len(values):
        raise ValueError(f"internal: {name} takes {len(names)} arguments, not {len(values)}")
    return dict(zip(names, values))


def flat_values(name: str, by_name: dict) -> list:
    """Stream `name`'s flat argument list from its values by name."""
    return [by_name[n] for n in flat_names(name)]


def grouped(name: str, names: list[str], values: list) -> list:
    """The C call's arguments of stream `name` from its flat arguments (`values`, in the
    order of `names`): each struct argument as (name, Group, {field: value or None})."""
    flat = dict(zip(names, values))
    out = []
    for c in STREAMS[name][1]:
        if isinstance(c, str):
            out.append(flat[c])
        else:
            arg, group = c
            out.append((arg, group, {f: None if v is None else flat[v]
                                     for f, v in group.fields}))
    return out


def c_groups(name: str, names: list[str], exprs: list[str], prefix: str,
             storage: str = "static const") -> tuple[list[str], list[str]]:
    """(declarations, the call's argument expressions) for a stream call written in C whose
    flat arguments are the C expressions `exprs`: each struct a designated initialiser named
    prefix + its argument's name, passed by address."""
    decls, args = [], []
    for a in grouped(name, names, exprs):
        if isinstance(a, tuple):
            arg, group, fields = a
            inits = ", ".join(f".{f} = {v or '0'}" for f, v in fields.items())
            decls.append(f"{storage} {group.ctype} {prefix}{arg} = {{{inits}}};")
            args.append(f"&{prefix}{arg}")
        else:
            args.append(a)
    return decls, args


def host_args(name: str, values: list, struct_class) -> tuple[list, list]:
    """(the ctypes call's arguments, the structs to keep alive) from flat host values (each
    pointer an address or None: NULL); `struct_class(ctype)`: the header's struct as a ctypes
    Structure (kernel_calls.struct_class)."""
    keep, out = [], []
    for a in grouped(name, flat_names(name), values):
        if isinstance(a, tuple):
            _, group, fields = a
            s = struct_class(group.ctype)(**fields)
            keep.append(s)
            out.append(C.addressof(s))
        else:
            out.append(a)
    return out, keep
