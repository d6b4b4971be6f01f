"""``clir-ot explain``: the OT plan between teacher tokens (English) and student tokens (x).

    clir-ot explain --model runs/.../student --en "All human beings are born free." --x "Watu wote ..."

The plan P* (Sinkhorn, cost 1 − cos) is a soft token alignment: a heatmap PNG, and in the terminal
the strongest alignment of each English token. ``--pair-file`` takes a bitext TSV (e.g. the UDHR
probe) and explains its first pairs per language.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models import Encoder, load_encoder
from .losses import cosine_cost, token_masses
from .masks import mass_mask
from .sinkhorn import sinkhorn


@dataclass
class Alignment:
    en_tokens: list[str]
    x_tokens: list[str]
    plan: list[list[float]]  # (n, m) over mass-carrying tokens
    cost: float  # <P*, C>
    top: list[tuple[str, str, float]]  # (en token, best x token, share of its mass)


@torch.no_grad()
def explain_pair(student: Encoder, teacher: Encoder, en: str, x: str, reg: float = 0.05,
                 kind: str = "passage", max_length: int = 128) -> Alignment:
    t_batch = teacher.tokenize([en], kind, max_length)
    s_batch = student.tokenize([x], kind, max_length)
    t_tok = teacher.token_embeddings(t_batch)
    s_tok = student.token_embeddings(s_batch)
    t_mask = mass_mask(teacher, t_batch, kind, keep_special=False)
    s_mask = mass_mask(student, s_batch, kind, keep_special=False)
    C = cosine_cost(t_tok, s_tok)
    P = sinkhorn(token_masses(t_mask), token_masses(s_mask), C, reg, num_iter=500, stop_thr=1e-6, warn=False)
    ti = t_mask[0].nonzero().flatten()
    si = s_mask[0].nonzero().flatten()
    plan = P[0][ti][:, si]
    en_tokens = teacher.tokenizer.convert_ids_to_tokens(t_batch["input_ids"][0][ti].tolist())
    x_tokens = student.tokenizer.convert_ids_to_tokens(s_batch["input_ids"][0][si].tolist())
    row_mass = plan.sum(1).clamp_min(1e-12)
    top = [(en_tokens[i], x_tokens[int(plan[i].argmax())], float(plan[i].max() / row_mass[i]))
           for i in range(len(en_tokens))]
    return Alignment(en_tokens, x_tokens, plan.tolist(), float((P * C).sum()), top)


def heatmap(alignment: Alignment, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, m = len(alignment.en_tokens), len(alignment.x_tokens)
    fig, ax = plt.subplots(figsize=(max(4, 0.28 * m + 2), max(3, 0.28 * n + 1.5)))
    im = ax.imshow(alignment.plan, cmap="viridis", aspect="auto")
    ax.set_xticks(range(m), alignment.x_tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(n), alignment.en_tokens, fontsize=7)
    ax.set_xlabel("student tokens (x)")
    ax.set_ylabel("teacher tokens (English)")
    ax.set_title(f"{title}\n⟨P*, C⟩ = {alignment.cost:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # glyphs missing from the default font (Telugu, Thai, ...)
        warnings.simplefilter("ignore")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def load_pair_models(model: str, teacher: str | None) -> tuple[Encoder, Encoder]:
    student = load_encoder(model)
    return student, (load_encoder(teacher) if teacher else student)


def can_draw() -> bool:
    """Whether matplotlib can be imported here (a GPU node's bundle may leave it out)."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def explain_udhr(model: str, teacher: str, langs: list[str], out: Path, pairs_per_lang: int = 1,
                 reg: float = 0.05) -> dict:
    """Alignments for the shortest UDHR pairs of each language (zero-shot probe), each with its plan and tokens
    in ``alignments.json``, and their heatmaps where matplotlib is installed (:func:`draw_heatmaps` draws the
    missing ones later from the file)."""
    from .probe import udhr_pairs

    student, teacher_enc = load_pair_models(model, teacher)
    results = {}
    for lang, (en, x) in udhr_pairs(langs).items():
        order = sorted(range(len(en)), key=lambda i: len(en[i]) + len(x[i]))[:pairs_per_lang]
        for k, i in enumerate(order):
            alignment = explain_pair(student, teacher_enc, en[i], x[i], reg)
            results[f"{lang}-{k}"] = {"en": en[i], "x": x[i], "cost": alignment.cost, "top": alignment.top,
                                      "title": f"{lang}: {Path(model).name if '/' in model else model}",
                                      "en_tokens": alignment.en_tokens, "x_tokens": alignment.x_tokens,
                                      "plan": alignment.plan}
    if can_draw():
        draw_heatmaps(results, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alignments.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return results


def draw_heatmaps(results: dict, out: Path) -> list[Path]:
    """``out/<key>.png`` for each alignment of ``results`` (``alignments.json``) that keeps its plan and tokens
    and has no heatmap there yet; the paths drawn."""
    drawn = []
    for key, r in results.items():
        path = Path(out) / f"{key}.png"
        if "plan" in r and not path.is_file():
            heatmap(Alignment(r["en_tokens"], r["x_tokens"], r["plan"], r["cost"], r["top"]), path, r["title"])
            drawn.append(path)
    return drawn
