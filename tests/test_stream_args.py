"""stream_args against tt_stream.h: the streams' C parameters, the structs they group and the
ctypes structures the host calls build (kernel_calls.struct_class) must be the header's,
field by field, or a stream would be handed the wrong pointers with no error (host calls
pass every struct field as a pointer). Read from the header text, no compiler."""
from __future__ import annotations

import ctypes as C
import re

import pytest

from tflite_train.runtime import kernel_calls as K
from tflite_train.runtime import stream_args as S


def _c_params(name: str):
    """The header's parameters of stream `name` (the row-source forms are declared in
    tt_row_source.h, which kernel_calls does not read: no ctypes call takes a reader)."""
    if name in K.c_signatures():
        return K.c_signatures()[name].params
    text = K.strip_comments((K.MICRO_KERNELS / "include" / "tt_row_source.h").read_text())
    params = re.search(rf"^\w+\s+{name}\(([^)]*)\);", text, re.M).group(1)
    return tuple(K._param(p) for p in params.split(","))


def _flat_types(name: str) -> dict[str, tuple[str, bool]]:
    params = [K._param(d) for d in S.STREAMS[name][0]]
    return {p.name: (p.ctype, p.pointer) for p in params}


@pytest.mark.parametrize("names, struct", [(S.LAYER_FIELDS, "tt_stream_layer"),
                                           (S.DIMS_FIELDS, "tt_stream_dims")])
def test_ctypes_structures_are_the_headers(names, struct):
    fields = K.structs()[struct]
    cls = K.struct_class(struct)                # what host calls build
    assert [f for f, _ in cls._fields_] == [f for f, _ in fields] == list(names)
    # every field a pointer in C, so c_void_p fields give the same layout
    assert all(t.endswith("*") for _, t in fields), fields
    assert all(t is C.c_void_p for _, t in cls._fields_)


@pytest.mark.parametrize("name", sorted(S.STREAMS))
def test_groups_are_the_headers_parameters(name):
    c = _c_params(S.c_function(name))
    groups = S.STREAMS[name][1]
    assert [p.name for p in c] == [g if isinstance(g, str) else g[0] for g in groups]
    flat = _flat_types(name)
    fields = {s: dict(K.structs()[s]) for s in ("tt_stream_layer", "tt_stream_dims")}
    for param, g in zip(c, groups):
        if isinstance(g, str):              # passed as it is: the flat argument's type
            assert (param.ctype, param.pointer) == flat[g], (name, g)
            continue
        arg, group = g
        assert param.ctype == group.ctype and param.pointer, (name, arg)
        for field, source in group.fields:
            if source is not None:          # the flat argument's type is the field's
                ctype, pointer = flat[source]
                assert pointer and fields[group.ctype][field] == ctype + " *", \
                    (name, arg, field, source)
    # every flat argument reaches C (a shape may fill two fields), and nothing else does
    used = {g for g in groups if isinstance(g, str)}
    used |= {v for g in groups if not isinstance(g, str) for _, v in g[1].fields if v}
    assert used == set(flat), name
