"""The distillation methods: shorthands for weighted sums of the objective's terms (:mod:`.objective`).

Kept free of torch so that the command line can list the methods without loading it.
"""

from __future__ import annotations

#: Which weight field each term of a method's mix takes, in the order the terms are added.
METHOD_TERMS: dict[str, tuple[tuple[str, str], ...]] = {
    "kd": (("kd_en", "kd_weight"), ("kd_x", "kd_weight")),
    "ot": (("ot", "ot_weight"), ("kd_en", "retention_weight")),
    "ot+kd": (("ot", "ot_weight"), ("kd_en", "kd_weight"), ("kd_x", "kd_weight")),
    "kd-layer": (("kd_layer", "kd_weight"), ("kd_en", "retention_weight")),
    "noise": (("kd_en", "retention_weight"),),
}

METHODS = tuple(METHOD_TERMS)
