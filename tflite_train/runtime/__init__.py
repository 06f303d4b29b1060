"""Executors of a graph: `numpy_exec` (reference) and `tflm` (the real interpreter)."""
