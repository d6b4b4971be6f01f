"""Inference precisions an encoder can run at (kept apart from the encoder so configs can list them cheaply)."""

PRECISIONS = ("fp32", "bf16", "int8")
