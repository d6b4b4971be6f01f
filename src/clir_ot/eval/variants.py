"""Evaluation variants: a system evaluated again with one thing changed, and reported as a system of its own,
``<system>+<variant>`` (``before+centre``, ``kd-mid+queries``), so that the report's tables, comparisons and
hypotheses take it like any condition.

- a training-free control on the system's embeddings (:mod:`clir_ot.retrieval.transforms`: ``centre``,
  ``centre-corpus``, ``whiten``), fitted from embeddings alone;
- one side swapped with the student before's (``queries``: the system's queries against the student before's
  passages; ``passages``: the student before's queries against the system's passages). Both read cached passage
  embeddings: only queries are encoded again.

A new variant is one entry of :data:`VARIANTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..retrieval.transforms import TRANSFORMS


@dataclass(frozen=True)
class Variant:
    description: str
    #: the transform of the searched embeddings (:data:`~clir_ot.retrieval.transforms.TRANSFORMS`)
    transform: str = "none"
    #: the side the system keeps: ``queries`` or ``passages`` (the other is the student before's); None: both
    keeps: str | None = None

    def applies_to_before(self) -> bool:
        """A side swap of the student before with itself is the student before: only transforms apply to it."""
        return self.keeps is None


VARIANTS: dict[str, Variant] = {
    **{name: Variant(TRANSFORMS[name], transform=name) for name in ("centre", "centre-corpus", "whiten")},
    "queries": Variant("its queries against the student before's passages", keeps="queries"),
    "passages": Variant("the student before's queries against its passages", keeps="passages"),
}


def variant_name(system: str, variant: str) -> str:
    return f"{system}+{variant}"


def eval_settings(variant: str, model: str, before: str) -> dict:
    """The evaluation settings of ``variant`` of ``model`` (``before``: the student before's model)."""
    v = VARIANTS[variant]
    if v.keeps == "queries":
        return {"model": before, "query_model": model}
    if v.keeps == "passages":
        return {"model": model, "query_model": before}
    return {"model": model, "transform": v.transform}
