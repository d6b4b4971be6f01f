"""The pre-registration of an experiment's hypotheses in its run folder, and the records that make it the
authority: ``manifest.json`` holds the family, its sha256, the commit and the time; every distillation that
runs afterwards records the family's sha256 it ran under (``distill/<tag>/registration.json``).

:func:`read_registration` refuses, with one line, a ``manifest.json`` whose family does not hash to its recorded
sha256 and one that disagrees with what the stages recorded (an edited family with a recomputed sha256), so that
neither ``reproduce`` nor the report can test another family than the one fixed before the first distillation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .artifacts import write_json_atomic
from .errors import ClirOtError
from .inputs import read_json_or_none

REGISTRATION = "manifest.json"
STAGE_RECORD = "registration.json"


def family_sha256(family: list) -> str:
    return hashlib.sha256(json.dumps(family, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def stage_records(root: Path) -> dict[str, str]:
    """``{distillation folder: the family sha256 it ran under}`` of every distillation that recorded one."""
    records = {}
    for path in sorted(Path(root).glob(f"distill/*/{STAGE_RECORD}")):
        saved = read_json_or_none(path)
        records[path.parent.name] = saved.get("hypotheses_sha256") if isinstance(saved, dict) else None
    return records


def read_registration(root: Path) -> dict | None:
    """The run folder's registration, checked against itself and against the stages; ``None`` when there is none
    (and no stage ran under one)."""
    root = Path(root)
    saved = read_json_or_none(root / REGISTRATION)
    registered = isinstance(saved, dict) and "hypotheses_sha256" in saved
    records = stage_records(root)
    if not registered:
        if records:
            raise ClirOtError(f"{root / REGISTRATION} holds no registration, but {len(records)} distillation(s) ran "
                              "under one: it was removed or replaced; restore it")
        return None
    digest = saved["hypotheses_sha256"]
    if not isinstance(saved.get("hypotheses"), list) or family_sha256(saved["hypotheses"]) != digest:
        raise ClirOtError(f"{root / REGISTRATION}: the registered family does not hash to its recorded sha256 "
                          f"({str(digest)[:12]}): it was edited; restore it")
    other = {tag: sha for tag, sha in records.items() if sha != digest}
    if other:
        tag, sha = next(iter(other.items()))
        raise ClirOtError(f"{root / REGISTRATION} registers the family {digest[:12]}, but distill/{tag} ran under "
                          f"{str(sha)[:12]}: the registration was changed after stages ran; restore it")
    return saved


def record_stage(folder: Path, registration: dict | None) -> None:
    """Record in a stage's ``folder`` the family sha256 it runs under (nothing without a registration)."""
    if registration is not None:
        write_json_atomic(Path(folder) / STAGE_RECORD, {"hypotheses_sha256": registration["hypotheses_sha256"]})
