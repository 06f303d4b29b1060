"""tiny-training .pkl import: the restricted unpickler, the structure of the result, and
agreement with the reference arithmetic."""
import io
import pickle
import zipfile

import numpy as np
import pytest

import pkl_reference as ref
from conftest import shared_file
from tflite_train import ops, tflite_io
from tflite_train.cli import EXIT_ERROR, main
from tflite_train.errors import ModelError
from tflite_train.importers.tiny_training import import_pkl, load_pkl
from tflite_train.runtime import numpy_exec, tflm

PKLS = ["mcunet-5fps", "mbv2-w0.35"]


def pkl_path(name):
    return shared_file("tiny-training", f"{name}.pkl")


def write_zip(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
    return path


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/tflite-train-pwned",))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    import os
    marker = "/tmp/tflite-train-pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    p = write_zip(tmp_path / "evil.pkl", pickle.dumps({"first_conv": Evil()}))
    with pytest.raises(ModelError, match="refusing to load: the pickle asks for .*system"):
        load_pkl(p)
    assert not os.path.exists(marker)


def test_other_bad_pickles(tmp_path, capsys):
    p = tmp_path / "plain.pkl"
    p.write_bytes(pickle.dumps({"a": 1}))
    assert main(["import", str(p), "-o", str(tmp_path / "o.tflite")]) == EXIT_ERROR
    assert "not a zip archive" in capsys.readouterr().err
    write_zip(tmp_path / "nodict.pkl", pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelError, match="needs first_conv"):
        load_pkl(tmp_path / "nodict.pkl")
    with zipfile.ZipFile(tmp_path / "empty.pkl", "w") as z:
        z.writestr("archive/version", "3")
    with pytest.raises(ModelError, match="no data.pkl"):
        load_pkl(tmp_path / "empty.pkl")
    # a persistent id (how torch stores tensors) is refused too
    buf = io.BytesIO()
    pk = pickle.Pickler(buf)
    pk.persistent_id = lambda obj: "storage" if isinstance(obj, bytes) else None
    pk.dump({"x": b"data"})
    with pytest.raises(ModelError, match="external storage"):
        load_pkl(write_zip(tmp_path / "torch.pkl", buf.getvalue()))
    assert not (tmp_path / "o.tflite").exists()


@pytest.mark.parametrize("name", PKLS)
@pytest.mark.parametrize("padding", ["kernel", "pad"])
def test_imported_model_is_standard_int8_and_runs_in_tflm(name, padding, tmp_path):
    g = import_pkl(pkl_path(name), padding)
    ops.validate(g)
    out = tmp_path / "m.tflite"
    tflite_io.save(g, out)
    data = out.read_bytes()
    x = np.random.default_rng(0).integers(-128, 128, (1, 128, 128, 3)).astype(np.int8)
    ours = numpy_exec.run(g, [x])
    theirs = tflm.run_all(g, data, [x])
    for index, value in theirs.items():
        assert np.array_equal(ours[index], value), g.tensors[index].name
    kinds = {op.kind for op in g.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D"} <= kinds
    assert ("PAD" in kinds) == (padding == "pad")
    assert g.tensors[g.outputs[0]].shape == (1, 1000)


@pytest.mark.parametrize("name", PKLS)
def test_grown_kernels_compute_exactly_what_explicit_pads_do(name):
    from tflite_train.runtime import numpy_exec
    a, b = import_pkl(pkl_path(name), "kernel"), import_pkl(pkl_path(name), "pad")
    x = np.random.default_rng(3).integers(-128, 128, (1, 128, 128, 3)).astype(np.int8)
    assert np.array_equal(numpy_exec.outputs(a, [x])[0], numpy_exec.outputs(b, [x])[0])


def boundary_case(real: np.ndarray, bound) -> np.ndarray:
    """Elements whose reference value lies within `bound` of a rounding boundary (k + 1/2):
    there the reference's float32 arithmetic and TFLite's fixed point may round apart."""
    r = real.astype(np.float64)
    return np.abs(r - np.floor(r) - 0.5) <= bound


@pytest.mark.parametrize("name", PKLS)
@pytest.mark.parametrize("padding", ["kernel", "pad"])
def test_every_tensor_agrees_with_the_reference_arithmetic(name, padding):
    """Each layer of the reference, fed the same int8 input as our layer: our output equals
    its output except on boundary cases, where they differ by exactly 1 LSB. A boundary case
    is an element whose reference value lies within the two sides' arithmetic error
    (pkl_reference.conv_real's bound: float32 on theirs, TFLite's double rounding on ours)
    of a half-integer; for the residual ADD and the average pool only exact ties count (the
    reference rounds them to even, TFLite away from zero). Measured on two inputs: 5,417
    (MCUNet) and 5,932 (MobileNetV2) elements of about 1.7 M differ, all among 11,069 and
    12,411 boundary cases; no residual element differs."""
    cfg = load_pkl(pkl_path(name))
    g = import_pkl(pkl_path(name), padding)
    by_name = {t.name: i for i, t in enumerate(g.tensors)}
    producers = g.producers()
    checked, differing, boundary = 0, 0, 0
    for seed in range(2):
        x = np.random.default_rng(seed).integers(-128, 128, (1, 128, 128, 3)).astype(np.int8)
        v = numpy_exec.run(g, [x])

        def conv_input(out_name):
            op = g.operators[producers[by_name[out_name]]]
            t = op.inputs[0]
            prev = producers.get(t)
            if prev is not None and g.operators[prev].kind == "PAD":
                t = g.operators[prev].inputs[0]          # the reference pads by itself
            return v[t]

        def check(out_name, real, bound=0.0):
            nonlocal checked, differing, boundary
            got = v[by_name[out_name]].reshape(real.shape).astype(int)
            diff = np.abs(got - ref.to_int8(real).astype(int))
            near = boundary_case(real, bound) & (real > -128.5) & (real < 127.5)
            assert np.all(diff <= near), (out_name, int(diff.max()),
                                          int(np.count_nonzero(diff > near)))
            checked += 1
            differing += int(np.count_nonzero(diff))
            boundary += int(np.count_nonzero(near))

        convs = [("first_conv", cfg["first_conv"])]
        for i, blk in enumerate(cfg["blocks"]):
            for part in ("pointwise1", "depthwise", "pointwise2"):
                if blk.get(part) is not None:
                    convs.append((f"blocks.{i}.{part}", blk[part]))
        for out_name, c in convs:
            check(out_name, *ref.conv_real(c, conv_input(out_name)))
        for i, blk in enumerate(cfg["blocks"]):
            if blk.get("residual") is None:
                continue
            add_op = g.operators[producers[by_name[f"blocks.{i}.residual"]]]
            pw2 = blk["pointwise2"]["params"]
            check(f"blocks.{i}.residual",
                  ref.add_real(blk["residual"], v[add_op.inputs[0]], pw2["y_zero"],
                               pw2["y_scale"], v[add_op.inputs[1]]))
        pool_in = g.operators[producers[by_name["avgpool"]]].inputs[0]
        check("avgpool", ref.avgpool_real(v[pool_in]))
        cls = dict(cfg["classifier"], stride=1)
        check("classifier", *ref.conv_real(cls, v[by_name["avgpool"]]))
    assert checked > 80
    print(f"{name} {padding}: {differing} elements differ, all among {boundary} boundary cases")
    assert 0 < differing <= boundary


def test_import_cli_writes_a_model_and_refuses_to_overwrite(tmp_path, capsys):
    src = pkl_path("mcunet-5fps")
    out = tmp_path / "mcunet.tflite"
    assert main(["import", str(src), "-o", str(out)]) == 0
    assert "52 operators" in capsys.readouterr().out          # 57 with explicit PADs
    assert main(["verify", str(out), "--samples", "1"]) == 0
    assert main(["import", str(tmp_path / "missing.pkl"), "-o", str(out)]) == EXIT_ERROR
