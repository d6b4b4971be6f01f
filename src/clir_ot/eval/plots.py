"""Report plots (PNG, matplotlib Agg): per-language bars with CIs, Recall@k curves, training curves."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _title(fig, title: str) -> None:
    fig.suptitle("\n".join(textwrap.wrap(title, 70)), fontsize=8)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars(table: dict[str, dict[str, dict]], metric: str, path: Path, title: str) -> Path:
    """``table[lang][condition] = {"mean", "ci_low", "ci_high"}`` → grouped bars with 95% CIs."""
    langs = list(table)
    conditions = list(dict.fromkeys(c for lang in langs for c in table[lang]))
    fig, axes = plt.subplots(1, len(langs), figsize=(max(5, 1.2 * len(conditions)) * len(langs) / 1.6, 3.8),
                             squeeze=False)
    colors = plt.cm.tab10.colors
    for ax, lang in zip(axes[0], langs, strict=True):
        for i, cond in enumerate(conditions):
            s = table[lang].get(cond)
            if not s:
                continue
            err = [[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]]
            ax.bar(i, s["mean"], yerr=err, color=colors[i % 10], capsize=3)
        ax.set_xticks(range(len(conditions)), conditions, rotation=45, ha="right", fontsize=7)
        ax.set_title(lang)
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric)
    _title(fig, title)
    return _save(fig, path)


def recall_curves(curves: dict[str, dict[str, dict[int, float]]], path: Path, title: str) -> Path:
    """``curves[lang][condition] = {k: mean Recall@k}`` → one panel per language, log-scale k."""
    langs = list(curves)
    fig, axes = plt.subplots(1, len(langs), figsize=(5 * len(langs), 3.8), squeeze=False)
    for ax, lang in zip(axes[0], langs, strict=True):
        for cond, curve in curves[lang].items():
            ks = sorted(curve)
            ax.plot(ks, [curve[k] for k in ks], label=cond)
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("Recall@k")
        ax.set_title(lang)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _title(fig, title)
    return _save(fig, path)


def training_curves(logs: dict[str, list[dict]], probe: dict[str, dict[str, float]], path: Path) -> Path:
    """Loss and OT cost per step for each method (mean over seeds), and UDHR probe accuracy bars."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for method, records in logs.items():
        steps = [r["step"] for r in records]
        axes[0].plot(steps, [r["loss"] for r in records], label=method)
        if all("ot_cost" in r for r in records):
            axes[1].plot(steps, [r["ot_cost"] for r in records], label=method)
    axes[0].set_title("training loss")
    axes[1].set_title("OT cost ⟨P*, C⟩")
    for ax in axes[:2]:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    names = list(probe)
    langs = list(next(iter(probe.values()))) if probe else []
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        axes[2].bar([j + i * width for j in range(len(langs))], [probe[name].get(lang, 0) for lang in langs],
                    width=width, label=name)
    axes[2].set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("UDHR probe: translation accuracy (held out)")
    axes[2].legend(fontsize=7)
    return _save(fig, path)


def trade_off(curves: dict[str, dict], path: Path, title: str) -> Path:
    """Per condition (mean over seeds, one point per curve step): retrieval change against probe gain, and
    retrieval and probe against drift."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("probe gain (accuracy − step 0)", "nDCG@10 change (− step 0)", "probe", "nDCG@10", True),
              ("drift (1 − cos to the initial student)", "nDCG@10", "drift", "nDCG@10", False),
              ("drift (1 − cos to the initial student)", "UDHR probe accuracy", "drift", "probe", False))
    for ax, (xlabel, ylabel, xk, yk, relative) in zip(axes, panels, strict=True):
        for condition, curve in curves.items():
            pts = [p for p in curve["mean"] if xk in p and yk in p]
            if not pts:
                continue
            x0, y0 = (pts[0][xk], pts[0][yk]) if relative else (0.0, 0.0)
            ax.plot([p[xk] - x0 for p in pts], [p[yk] - y0 for p in pts], marker="o", label=condition)
            for p in pts:
                ax.annotate(str(p["step"]), (p[xk] - x0, p[yk] - y0), fontsize=6, alpha=0.7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _title(fig, title)
    return _save(fig, path)
