"""Evolutionary search over the space (search.space): maximise the summed contributions
gain_b[k] + sum_i gain_w[i, r_i] subject to memory <= budget (and MACs <= a limit), the
memory of every scheme it keeps coming from the real planner (search.budget).

A population of feasible schemes; each generation keeps the best as parents and breeds
children by mutation (each gene resampled with a small probability) and crossover (each
gene from either parent); children over budget are dropped. Genes are k (only depths whose
bias run was measured) and one ratio per layer within the last k layers (0 or a measured
ratio); a child whose weights fall outside its last k gets the smallest measured k that
covers them, or loses them. Seeded: the same seed, contributions and memory give the same
scheme. The start population holds the new head alone and the best bias-only scheme that
fits, so the search never returns less than they give.

Planning a scheme costs a fraction of a second to seconds (augment's passes plan the arena
many times), and under a tight budget most children are over it: `plausible`, a cheap
estimate, drops the children it puts clearly over budget before they are planned, and the
search stops once its best has not improved for `patience` generations.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .space import Point


@dataclass(frozen=True)
class Gains:
    bias: dict[int, float]                            # k -> gain (k = 0: 0)
    weights: dict[tuple[int, Fraction], float]        # (position, ratio) -> gain
    n_layers: int

    def score(self, p: Point) -> float:
        return self.bias[p.k] + sum(self.weights[w] for w in p.weights)


@dataclass
class Settings:
    population: int = 40
    generations: int = 25
    parents: int = 10
    mutation: float = 0.15
    # a random scheme of the start population trains each allowed layer's weights with
    # this probability
    density: float = 0.2
    tries: int = 50                    # attempts to make one feasible child
    patience: int = 5                  # generations without a better best before stopping


def evolve(gains: Gains, feasible: Callable[[Point], bool], seed: int,
           settings: Settings | None = None, *,
           plausible: Callable[[Point], bool] = lambda p: True,
           on_generation: Callable[[int, Point], None] = lambda g, best: None
           ) -> tuple[Point, int]:
    """(best scheme, generations run). `feasible`: the planner's verdict (every scheme kept
    has it); `plausible`: a cheap one asked first, False for schemes not worth planning;
    `on_generation(generation, best)` after each generation."""
    s = settings or Settings()
    rng = np.random.default_rng(seed)
    ks = sorted(gains.bias)
    options: dict[int, list[Fraction]] = {}
    for (p, r) in sorted(gains.weights):
        options.setdefault(p, []).append(r)
    layers = sorted(options)
    depth = {p: gains.n_layers - p for p in layers}

    def repair(k: int, weights: dict[int, Fraction]) -> Point:
        need = max([depth[p] for p, r in weights.items() if r] + [k])
        cover = [c for c in ks if c >= need]
        k = cover[0] if cover else k
        return Point(k, tuple(sorted((p, r) for p, r in weights.items()
                                     if r and depth[p] <= k)))

    def random_point() -> Point:
        k = int(rng.choice(ks))
        weights = {p: options[p][int(rng.integers(len(options[p])))]
                   for p in layers if depth[p] <= k and rng.random() < s.density}
        return repair(k, weights)

    def mutate(a: Point) -> Point:
        k = int(rng.choice(ks)) if rng.random() < s.mutation else a.k
        weights = dict(a.weights)
        for p in layers:
            if depth[p] <= k and rng.random() < s.mutation:
                choices = [Fraction(0)] + options[p]
                weights[p] = choices[int(rng.integers(len(choices)))]
        return repair(k, weights)

    def cross(a: Point, b: Point) -> Point:
        k = a.k if rng.random() < 0.5 else b.k
        wa, wb = dict(a.weights), dict(b.weights)
        weights = {p: (wa if rng.random() < 0.5 else wb).get(p, Fraction(0)) for p in layers}
        return repair(k, weights)

    def rank(points):
        # equal sums: the scheme that trains less
        return sorted(points, key=lambda p: (-gains.score(p), len(p.weights), p.k, p.key))

    population: dict[str, Point] = {}

    def admit(p: Point) -> bool:
        if p.key in population or not plausible(p) or not feasible(p):
            return False
        population[p.key] = p
        return True

    admit(Point(0))
    bias_only = [Point(k) for k in ks if feasible(Point(k))]
    if bias_only:
        admit(max(bias_only, key=lambda p: (gains.score(p), -p.k)))
    for _ in range(s.population * s.tries):
        if len(population) >= s.population:
            break
        admit(random_point())
    generations, best, stale = 0, rank(population.values())[0], 0
    for generations in range(1, s.generations + 1):
        parents = rank(population.values())[:s.parents]
        population = {p.key: p for p in parents}
        for i in range(s.population - len(parents)):
            for _ in range(s.tries):
                if i % 2 == 0:
                    child = mutate(parents[int(rng.integers(len(parents)))])
                else:
                    a, b = rng.choice(len(parents), 2)
                    child = cross(parents[int(a)], parents[int(b)])
                if admit(child):
                    break
        top = rank(population.values())[0]
        stale = stale + 1 if top == best else 0
        best = top
        on_generation(generations, best)
        if stale >= s.patience:
            break
    return best, generations
