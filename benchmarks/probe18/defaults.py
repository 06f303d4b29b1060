"""Round 18 (probe18): `import` + `augment` (defaults, `--seed s`) + 300 training steps on
Fashion-MNIST, engine c, split of seed 0 and sample order of seed s (as
benchmarks/default_schedule.py), 1000 validation samples. Env: GRAD (int8, the CLI's
default, or float32 as the default-schedule table), HEADX (a further factor on the new
head's rates, for the sweep). Seed 0 with GRAD=int8 is exactly the CLI's
`augment --num-classes 10 --scheme S` + `train --data fashion-mnist --steps 300 --engine c`
(checked: the same loss and accuracy).

    PYTHONPATH=. nice .venv/bin/python benchmarks/probe18/defaults.py person|mcunet|mbv2 SEED
"""
import os, sys, time, json, copy, numpy as np
from pathlib import Path
from tflite_train import lr, augment, data, tflite_io
from tflite_train.autodiff import Hyper
from tflite_train.importers.tiny_training import import_pkl
from tflite_train.train import Trainer, sample_order, split
HERE = Path(__file__).resolve().parent.parent
SH = HERE.parent.parent / "shared" / "models"
MODELS = {"mcunet": (SH/"tiny-training/mcunet-5fps.pkl", str(HERE / "schemes" / "mcunet-5fps_99kb.json")),
          "mbv2": (SH/"tiny-training/mbv2-w0.35.pkl", str(HERE / "schemes" / "mbv2-w0.35_99kb.json")),
          "person": (SH/"tflm/person_detect.tflite", "bias-only"),
          "person_last2": (SH/"tflm/person_detect.tflite", "last:2"),
          "person_sparse": (SH/"tflm/person_detect.tflite", str(HERE / "schemes" / "person_detect_sparse.json"))}
hx = float(os.environ.get("HEADX", "1"))
if hx != 1:
    orig = lr.model_rates
    def mr(*a, **k):
        r = orig(*a, **k)
        for key, v in r.items():
            if v.rule == "nlms":
                v.weight = lr._sig(v.weight * hx); v.bias = lr._sig(v.bias * hx)
        return r
    lr.model_rates = mr
model, seed = sys.argv[1], int(sys.argv[2])
grad = os.environ.get("GRAD", "int8")
path, scheme = MODELS[model]
g = import_pkl(path) if path.suffix == ".pkl" else tflite_io.load(path)
res = augment.augment(g, scheme, 10, Hyper(seed=seed, grad=grad))
ds = data.load("fashion-mnist", res.graph.tensors[res.graph.inputs[0]].shape)
tr, va = split(len(ds), 0.1, 1000, 0)
t0 = time.time()
T = Trainer(res.graph, ds, "c")
L = [T.step(i) for i in sample_order(tr, 300, seed)]
acc = T.accuracy(va)
print(json.dumps({"model": model, "seed": seed, "headx": hx, "grad": grad,
      "acc": round(100*acc, 1), "loss": f"{np.mean(L[:60]):.3f}->{np.mean(L[-60:]):.3f}",
      "head_lr": res.metadata["trained"][-1]["lr"], "s": round(time.time()-t0)}), flush=True)
if os.environ.get("DIAG"):   # the validation predictions of the end state: which classes
    outs = [T.executor.invoke([data.to_model_input(ds.images[i], T.input), np.array([-1], np.int32)])[T.output_index].ravel() for i in va[:300]]
    O = np.array(outs)
    print("output dtype", O.dtype, "min", O.min(), "max", O.max(), "pred hist", np.bincount(O.argmax(1), minlength=10),
          "frac rows with tie at max", np.mean([(r == r.max()).sum() > 1 for r in O]))
    print("label hist", np.bincount(ds.labels[va[:300]], minlength=10))
    print(O[:5])
