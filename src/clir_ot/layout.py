"""Folder names inside an experiment's runs folder, derived safely from what a YAML file says.

A name from a YAML value never becomes a path as it is: ``baselines: [/abs/model]`` must not write
into the model's own folder, and ``name: ../../x`` must not leave the runs folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,119}$")
#: The name of the student before distillation in conditions, comparisons and reports.
BEFORE = "before"


def is_safe_name(name: str) -> bool:
    """Letters, digits, ``.``, ``_``, ``+``, ``-`` (not first), at most 120 characters: one path part."""
    return bool(SAFE_NAME.match(name)) and name not in (".", "..")


def baseline_folder(system: str) -> str:
    """The folder of a baseline system: the system itself where it is a plain name (``bm25``,
    ``me5-small``), else its last path part plus a short hash of the whole (``model-1a2b3c4d``)."""
    if is_safe_name(system):
        return system
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(system.rstrip("/")).name).strip("._") or "model"
    return f"{stem[:40]}-{hashlib.sha256(system.encode()).hexdigest()[:8]}"


def run_tag(condition: str, seed: int) -> str:
    """``<condition>-s<seed>``: the folder name of one distillation and its evaluations."""
    return f"{condition}-s{seed}"


def baseline_dir(root: Path, system: str) -> Path:
    return Path(root) / "baselines" / baseline_folder(system)


def distill_dir(root: Path, condition: str, seed: int) -> Path:
    return Path(root) / "distill" / run_tag(condition, seed)


def student_dir(root: Path, condition: str, seed: int) -> Path:
    return distill_dir(root, condition, seed) / "student"


def snapshot_dir(root: Path, condition: str, seed: int, step: int) -> Path:
    """A student saved at an intermediate step (kept only until its curve point is measured)."""
    return distill_dir(root, condition, seed) / "snapshots" / f"step-{step}"


def eval_dir(root: Path, condition: str, seed: int, step: int | None = None) -> Path:
    """The evaluation of a student (``step`` None) or of its snapshot at ``step``."""
    base = Path(root) / "eval" / run_tag(condition, seed)
    return base if step is None else Path(root) / "curves" / run_tag(condition, seed) / f"step-{step}"


def geometry_file(root: Path, tag: str) -> Path:
    """Geometry readouts (anisotropy, principal components, relevance gap) of a student or the student before."""
    return Path(root) / "probe" / "geometry" / f"{tag}.json"


def variant_dir(root: Path, variant: str, tag: str) -> Path:
    """The evaluation of a variant (:mod:`clir_ot.eval.variants`) of a student (``tag``: ``<condition>-s<seed>``)
    or of the student before (``tag``: ``before``)."""
    return Path(root) / "variants" / variant / tag


def curve_before_dir(root: Path) -> Path:
    """The evaluation of the student before distillation on the curves' own pool (``curve_pool``)."""
    return Path(root) / "curves" / BEFORE


def curve_file(root: Path, condition: str, seed: int) -> Path:
    return Path(root) / "curves" / f"{run_tag(condition, seed)}.json"


def layer_suffix(teacher_layer: int, student_layer: int) -> str:
    """How a probe of other layers than the last is told apart: ``""`` (last), ``-layer6``, ``-t6-s4``."""
    if (teacher_layer, student_layer) == (-1, -1):
        return ""
    return f"-layer{student_layer}" if teacher_layer == student_layer else f"-t{teacher_layer}-s{student_layer}"


def drift_file(root: Path, tag: str) -> Path:
    """A student's drift from the student before, on yo passages and on held-out English verses."""
    return Path(root) / "probe" / "drift" / f"{tag}.json"


def diag_file(root: Path, tag: str) -> Path:
    return Path(root) / "diag" / f"{tag}.json"


#: bible-clir lexical baselines (student-encoded queries only: BM25 has no query encoder)
CLIR_LEXICAL = ("bm25", "bm25-strong")


def clir_dir(root: Path, system: str, query_encoder: str) -> Path:
    """bible-clir evaluation of a system (``before``, a BM25 variant or a run tag ``<condition>-s<seed>``)
    with its queries encoded by ``student`` (the system itself) or by the ``teacher``."""
    return Path(root) / "clir" / system / query_encoder


def token_probe_file(root: Path, system: str) -> Path:
    """The token-alignment probe of ``before`` or a run tag ``<condition>-s<seed>``."""
    return Path(root) / "probe" / "token" / f"{system}.json"


#: the folder of the BM25 run on the full corpus, beside a profile's reduced-pool baselines
FULL_CORPUS_BM25 = "bm25-full"


def baseline_label(name: str, student: str) -> str:
    """How the report and the expected scores name a baseline: the student itself is ``before``, BM25 on the
    full corpus ``bm25 (full corpus)``, the lexical runs by their names, any other model ``<name> alone``."""
    if name == student:
        return BEFORE
    if name == FULL_CORPUS_BM25:
        return "bm25 (full corpus)"
    return name if name in CLIR_LEXICAL else f"{name} alone"
