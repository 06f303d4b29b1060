"""The person detector's bias-only with a batch, on the real int8 model (issue 15: 60% in
300 steps): `augment --num-classes 10 --scheme bias-only --batch B` then 300 updates of
`train` (engine c), the validation accuracy of train's default split on --val samples.
--head-mult and --headroom override the new head's rates (x) and grid headroom (the
sweep's rows; the product's rule, lr.head_boost / augment.head_headroom, is x B and 8 B).
Prints one JSON line per run.

    nice .venv/bin/python benchmarks/person_batch_runs.py --batch 8 --seeds 0,1,2 --val 3000
"""
import argparse
import json
import time
from pathlib import Path

from tflite_train import augment, data, tflite_io, training_ops
from tflite_train.autodiff import Hyper
from tflite_train.train import train

MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "tflm" / "person_detect.tflite"


def run(batch: int, seed: int, val: int, head_mult: float | None, headroom: float | None,
        model: str) -> dict:
    saved = augment.HEAD_WEIGHT_HEADROOM
    if headroom is not None:      # the grid at `headroom`, whatever the batch's own factor
        augment.HEAD_WEIGHT_HEADROOM = headroom / batch
    try:
        r = augment.augment(tflite_io.load(str(model)), "bias-only", 10,
                            Hyper(batch=batch, seed=seed))
    finally:
        augment.HEAD_WEIGHT_HEADROOM = saved
    g = r.graph
    head = {i for i, t in enumerate(g.tensors) if t.name.startswith("head/")}
    if head_mult is not None:     # the head's rates at head_mult x the rule's batch-1 ones
        for op in g.operators:
            if "UPDATE" in op.kind and head & set(op.inputs):
                o = training_ops.options_of(op)
                training_ops.set_option(op, "lr", float(o["lr"]) * head_mult / batch)
    ds = data.load("fashion-mnist", g.tensors[g.inputs[0]].shape)
    t0 = time.time()
    _, hist = train(g, ds, steps=300, seed=seed, val_max=val)
    last = hist.points[-1]
    return dict(batch=batch, seed=seed, val=val, head_mult=head_mult or batch,
                headroom=headroom or augment.head_headroom(batch),
                accuracy=last.val_accuracy, loss=last.train_loss,
                seconds=round(time.time() - t0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seeds", default="0")
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--head-mult", type=float)
    p.add_argument("--headroom", type=float)
    p.add_argument("--model", default=MODEL)
    a = p.parse_args()
    for s in a.seeds.split(","):
        print(json.dumps(run(a.batch, int(s), a.val, a.head_mult, a.headroom, a.model)),
              flush=True)


if __name__ == "__main__":
    main()
