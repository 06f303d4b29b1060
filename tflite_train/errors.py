"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class TTError(Exception):
    """Base class: a problem with the user's input, not a bug in tflite-train."""


class ModelError(TTError):
    """The model file is unreadable, malformed, or uses something we do not support."""


class UnsupportedOpError(ModelError):
    def __init__(self, op_index: int, kind: str, why: str = "not supported"):
        super().__init__(f"operator {op_index} ({printable(kind)}): {why}")
        self.op_index = op_index
        self.kind = kind


def printable(name: str, width: int = 48) -> str:
    """A name from a file as a one-line message shows it: control characters as '?', long
    names cut in the middle."""
    text = "".join(c if c.isprintable() else "?" for c in str(name))
    if len(text) > width:
        text = text[:width // 2 - 2] + "..." + text[-(width // 2 - 1):]
    return text
