"""Converters from other model formats into the IR."""
