"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class TTError(Exception):
    """Base class: a problem with the user's input, not a bug in tflite-train."""


class ModelError(TTError):
    """The model file is unreadable, malformed, or uses something we do not support."""


class UnsupportedOpError(ModelError):
    def __init__(self, op_index: int, kind: str, why: str = "not supported"):
        super().__init__(f"operator {op_index} ({kind}): {why}")
        self.op_index = op_index
        self.kind = kind
