"""The memory of a scheme: the training model `augment --scheme` writes for it (built in
memory, no file), planned for the chosen target exactly as `plan` plans it, so the total is
the one `plan` prints for that model, not an estimate of our own. Cached by scheme: the
evolution asks for the same schemes again and again, and the cache file keeps them for the
next search.

Targets: `tflm` (the training model inside TFLM on a 32-bit Cortex-M7: planned arena + trained
parameters + optimizer state + TFLM's persistent data, `tflm_memory.account`) and `codegen` (the
generated standalone program's plan, `codegen.planned_sram`: its arena + trained parameters
+ momentum + the update ops' stream states; `plan` prints it as "generated program").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import augment, tflite_io, tflm_memory
from ..autodiff import Hyper
from ..compare import step_macs
from ..errors import TTError
from .space import Point

TARGETS = ("tflm", "codegen")

# Learning rates and seeds change no byte of the plan; a fixed rate spares augment from
# deriving rates from the model for every scheme it builds here.
_PLAN_LR = 0.05


@dataclass(frozen=True)
class Cost:
    total: int                 # bytes, as `plan` totals them for the target
    parts: dict                # what the total is made of
    macs: int                  # one training step (forward + backward + updates)


def _tflm(graph, data: bytes) -> tuple[int, dict]:
    t = tflm_memory.account(graph, len(data))
    return t["sram_total"], {"arena": t["arena"], "trainable_parameters": t["trained"],
                             "optimizer_state": t["optimizer"],
                             "tflm_persistent": t["persistent"],
                             **({"accumulators": t["accumulators"]} if t["accumulators"]
                                else {})}


def _codegen(graph, data: bytes) -> tuple[int, dict]:
    from ..codegen import planned_sram
    c = planned_sram(graph, data)
    return c["total_bytes"], {"arena": c["arena_bytes"],
                              "trainable_parameters": c["trained_parameter_bytes"],
                              "optimizer_state": c["momentum_bytes"],
                              **({"accumulators": c["accumulator_bytes"]}
                                 if c["accumulator_bytes"] else {}),
                              "update_streams": c["update_state_bytes"]}


def planner(target: str):
    if target == "tflm":
        return _tflm
    if target == "codegen":
        return _codegen
    raise TTError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")


class MemoryModel:
    def __init__(self, model: bytes, num_classes: int, target: str, known: dict):
        """`known`: key -> cost as a dict (the cache file's memory table, updated here)."""
        self.model = model
        self.num_classes = num_classes
        self.target = target
        self.measure = planner(target)
        self.known = known
        self.planned = 0            # schemes planned by this instance (cache misses)
        self.asked = 0

    def cost(self, point: Point) -> Cost:
        return self.cost_of(point.key, point.doc())

    def cost_of(self, name: str, scheme: dict | str) -> Cost:
        """The cost of any scheme `augment` takes (a JSON document or its --scheme text),
        cached under `name`."""
        self.asked += 1
        key = f"{self.target}|classes={self.num_classes}|{name}"
        if key not in self.known:
            self.known[key] = asdict(self._plan(scheme))
            self.planned += 1
        return Cost(**self.known[key])

    def _plan(self, scheme: dict | str) -> Cost:
        graph = tflite_io.parse(self.model)
        # the flash budget counts TFLM's code (tflm_memory.TFLM_CODE_BYTES): none for the
        # generated program, whose flash is its own code
        memory = augment.MemoryOptions(flash_budget=None) if self.target == "codegen" else None
        result = augment.augment(graph, scheme, self.num_classes, Hyper(lr=_PLAN_LR),
                                 memory=memory)
        # the bytes the flash budget measured (augment._fit), or the model's own
        data = result.written or tflite_io.serialize(result.graph)
        total, parts = self.measure(result.graph, data)
        return Cost(total, parts, step_macs(result.graph))


class Estimate:
    """A scheme's total guessed from the planned analysis runs, without planning it:
    bias:K's total plus, for each trained weight, what its run adds over the bias run of the
    same depth. Not the planner's answer (the arena is a peak over time, not a sum): the
    evolution asks it only to skip planning schemes it puts more than `margin` over budget.
    The margin widens to the largest overestimate seen in the schemes planned since, so the
    skipping stays on the safe side of what this model's estimates miss by. (Person
    detector at 100 KB, 874 schemes of several layers planned: estimates from 7.6% under to
    4.8% over the planned total; a 3% margin would have skipped 272 plans over budget and
    no scheme within it.)"""

    MARGIN = 0.03

    def __init__(self, costs: dict[str, int], depth):
        """`costs`: key -> total of every single-layer point the analysis has (bias:K as
        "b{K}", a weight run as its point key); `depth(position)` as Space.depth."""
        self.costs = costs
        self.depth = depth
        self.margin = self.MARGIN

    def __call__(self, point: Point) -> int:
        total = self.costs[Point(point.k).key]
        for w in point.weights:
            k = self.depth(w[0])
            total += self.costs[Point(k, (w,)).key] - self.costs[Point(k).key]
        return total

    def plausible(self, point: Point, budget: int) -> bool:
        return self(point) <= budget * (1 + self.margin)

    def observe(self, point: Point, total: int) -> None:
        """The planner's total for `point`."""
        self.margin = max(self.margin, (self(point) - total) / total)
