"""Resource limits of the validation layer (validate.py and the op modules' checks): far
above any model a microcontroller (or verify's 224x224 MobileNetV2) needs, and low enough
that no file makes the host allocate gigabytes or compute for hours."""
from __future__ import annotations

from .errors import ModelError, printable

# TFLM's RuntimeShape and the C kernels stop at 6 dimensions.
MAX_RANK = 6
MAX_TENSOR_ELEMENTS = 1 << 26          # one tensor
MAX_ACTIVATION_BYTES = 1 << 30         # all computed tensors together
MAX_WORK_ELEMENTS = 1 << 28            # one op's padded or windowed temporary on the host
MAX_MACS = 1 << 34                     # one Invoke, forward and training ops


def work_limit(index: int, kind: str, elements: int, what: str) -> None:
    """A host temporary (padded input, windows) of one op within MAX_WORK_ELEMENTS."""
    if elements > MAX_WORK_ELEMENTS:
        raise ModelError(f"operator {index} ({printable(kind)}): its {what} would have "
                         f"{elements:,} elements; more than {MAX_WORK_ELEMENTS:,} are refused")
