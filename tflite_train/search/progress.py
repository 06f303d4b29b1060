"""The search's progress on stderr: a tqdm bar on a terminal; elsewhere (a log file, a pipe,
a batch job, where tqdm draws nothing) lines, one per finished item of a stage whose items
are long (a fine-tuning run, a generation of the evolution), else at most one every `EVERY` seconds and the last, each with
items done / total, the time elapsed and the time left."""
from __future__ import annotations

import sys
import time

EVERY = 30.0


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Quiet:
    def update(self, n: int = 1, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    def __init__(self, what: str, total: int, unit: str, initial: int):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=what, file=sys.stderr,
                        leave=False)

    def update(self, n: int = 1, note: str = "") -> None:
        if note:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class Lines:
    def __init__(self, what: str, total: int, unit: str, initial: int, every: float,
                 bound: bool = False, stream=None, now=time.monotonic):
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.about = "at most" if bound else "about"
        self.stream = stream or sys.stderr
        self.now = now
        self.done = self.initial = initial
        self.start = self.last = now()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        t = self.now()
        if self.every and t - self.last < self.every and self.done < self.total:
            return
        self.last = t
        elapsed = t - self.start
        new = self.done - self.initial
        left = ""
        if 0 < new and self.done < self.total:
            left = f", {self.about} {clock(elapsed / new * (self.total - self.done))} left"
        print(f"search: {self.what} {self.done}/{self.total} {self.unit}s, "
              f"{clock(elapsed)} elapsed{left}" + (f"; {note}" if note else ""),
              file=self.stream, flush=True)

    def close(self) -> None:
        pass


def reporter(enabled: bool, what: str, total: int, unit: str, initial: int = 0,
             per_item: bool = False, bound: bool = False):
    """`per_item`: a line for every finished item when stderr is not a terminal; `bound`:
    the total is a limit the stage may stop short of (its time left is at most)."""
    if not enabled:
        return Quiet()
    if sys.stderr.isatty():
        return Bar(what, total, unit, initial)
    return Lines(what, total, unit, initial, 0.0 if per_item else EVERY, bound)
