"""The distillation methods: shorthands for weighted sums of the objective's terms (:mod:`.objective`).

Kept free of torch so that the command line can list the methods without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Which weight field each term of a method's mix takes, in the order the terms are added.
METHOD_TERMS: dict[str, tuple[tuple[str, str], ...]] = {
    "kd": (("kd_en", "kd_weight"), ("kd_x", "kd_weight")),
    "ot": (("ot", "ot_weight"), ("kd_en", "retention_weight")),
    "ot+kd": (("ot", "ot_weight"), ("kd_en", "kd_weight"), ("kd_x", "kd_weight")),
    "kd-layer": (("kd_layer", "kd_weight"), ("kd_en", "retention_weight")),
    "noise": (("kd_en", "retention_weight"),),
}

METHODS = tuple(METHOD_TERMS)
#: one line per method, for the command line's help and the docs' tables
METHOD_DESCRIPTIONS: dict[str, str] = {
    "kd": "KD (Reimers & Gurevych 2020): MSE of pooled embeddings, English and x sides",
    "ot": "OPTICAL's token alignment (entropic OT plan, loss ⟨P*, C⟩) plus the English retention term",
    "ot+kd": "the OT term plus both KD terms",
    "kd-layer": "KD at student_layer / teacher_layer plus the retention term: OT's mix with OT's term replaced",
    "noise": "the control: the retention term alone (same data and budget, no cross-lingual signal)",
}
#: one line per term of the objective (:data:`clir_ot.distill.objective.TERMS`)
TERM_DESCRIPTIONS: dict[str, str] = {
    "ot": "⟨P*, C⟩_F between the teacher's English and the student's x token states",
    "kd_x": "‖S(x) − T(en)‖² of pooled embeddings",
    "kd_en": "‖S(en) − T(en)‖²: KD's English term and OT's retention term",
    "kd_layer": "KD at the layers OT aligns, x and English sides",
}


def resolve_mix(method: str, objective: Mapping[str, float] | None, weights: Any) -> dict[str, float]:
    """``{term: weight}`` a run trains with: the explicit ``objective``, else ``method``'s mix with the weight
    fields of ``weights`` (a DistillConfig); terms of weight 0 are dropped."""
    if objective is not None:
        mix = dict(objective)
    else:
        mix = {}
        for term, weight_field in METHOD_TERMS[method]:
            mix[term] = mix.get(term, 0.0) + float(getattr(weights, weight_field))
    return {term: w for term, w in mix.items() if w != 0}


def objective_label(method: str, objective: Mapping[str, float] | None) -> str:
    """What a run trains with, in words: its method's name, or for an explicit ``objective`` its terms
    (``1·kd_layer + 0.5·kd_en``): a condition given by its objective alone is never named after the method
    field's default."""
    if objective is None:
        return method
    return " + ".join(f"{weight:g}·{term}" for term, weight in objective.items() if weight) or "no term"
