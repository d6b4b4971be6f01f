"""The report's per-query section: where a difference between two systems comes from, query by query.

For each declared pair ``(a, b)`` (``per_query:`` in the experiment) and language: the distribution of the
per-query difference in nDCG@10 (a's per-query score averaged over its seeds, minus b's), the queries it moves
most either way (the query, its length in words, its number of relevant passages, and the rank of its first
relevant passage in the BM25 run of the same collection), and the mean difference on the queries that BM25
already solves (first relevant passage in BM25's top 10) against the others. Exploratory, from saved artifacts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.benchmarks import get_benchmark
from ..ranking import rank
from ..retrieval.runfile import read_run

MEASURE = "nDCG@10"
#: BM25 "solves" a query when its first relevant passage is within this rank
SOLVED_AT = 10
SHOWN = 5


def _mean_per_query(entry: dict) -> dict[str, float]:
    queries = set.intersection(*(set(seed) for seed in entry["per_query"]))
    return {q: float(np.mean([seed[q][MEASURE] for seed in entry["per_query"]])) for q in sorted(queries)}


def first_relevant_rank(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, int | None]:
    """Per query, the 1-based rank (trec_eval's order) of its first relevant document in ``run``; None if absent."""
    out: dict[str, int | None] = {}
    for qid, judged in qrels.items():
        relevant = {d for d, r in judged.items() if r > 0}
        ranked = rank(run.get(qid, {}))
        out[qid] = next((i + 1 for i, d in enumerate(ranked) if d in relevant), None)
    return out


def per_query_section(data: dict, pairs: list[tuple[str, str]]) -> list[dict]:
    """One entry per pair and language with results of both (:func:`compare_queries`)."""
    return [compare_queries(a, b, lang, systems) for a, b in pairs for lang, systems in data.items()
            if a in systems and b in systems]


def compare_queries(a: str, b: str, lang: str, systems: dict) -> dict:
    """The per-query difference of ``a`` and ``b`` on ``lang``: its distribution, the queries it moves most, and
    the split by whether the ``bm25`` run among ``systems`` already ranks a relevant passage in its top 10."""
    bench = get_benchmark("miracl")
    ours, theirs = _mean_per_query(systems[a]), _mean_per_query(systems[b])
    common = sorted(set(ours) & set(theirs))
    delta = {q: ours[q] - theirs[q] for q in common}
    topics = [q for q in bench.queries(lang, bench.default_split) if q.query_id in delta]
    texts = {q.query_id: q.text for q in topics}
    qrels = bench.judged_qrels(lang, bench.default_split, topics)
    bm25_runs = systems.get("bm25", {}).get("runs") or []
    bm25 = first_relevant_rank(read_run(Path(bm25_runs[0])), qrels) if bm25_runs else {}

    def row(q: str) -> dict:
        return {"query": q, "text": texts.get(q, ""), "words": len(texts.get(q, "").split()),
                "relevant": sum(r > 0 for r in qrels.get(q, {}).values()), "bm25_first": bm25.get(q),
                "a": ours[q], "b": theirs[q], "delta": delta[q]}

    values = np.array([delta[q] for q in common])
    ordered = sorted(common, key=lambda q: (delta[q], q))
    solved = [delta[q] for q in common if bm25.get(q) is not None and bm25[q] <= SOLVED_AT]
    unsolved = [delta[q] for q in common if bm25 and (bm25.get(q) is None or bm25[q] > SOLVED_AT)]
    return {"a": a, "b": b, "lang": lang, "queries": len(common),
            "quantiles": {p: float(np.percentile(values, p)) for p in (0, 10, 25, 50, 75, 90, 100)},
            "mean": float(values.mean()), "better": int((values > 0).sum()), "worse": int((values < 0).sum()),
            "same": int((values == 0).sum()), "gains": [row(q) for q in reversed(ordered[-SHOWN:])],
            "losses": [row(q) for q in ordered[:SHOWN]],
            "bm25_solved": {"queries": len(solved), "mean": float(np.mean(solved)) if solved else None},
            "bm25_unsolved": {"queries": len(unsolved), "mean": float(np.mean(unsolved)) if unsolved else None}}


def per_query_markdown(section: list[dict]) -> list[str]:
    if not section:
        return []
    lines = ["## Per query (exploratory)", "",
             f"Per query, {MEASURE} of a (mean over its seeds) minus b's, on the collection the report evaluates; "
             f"BM25 first relevant: the rank of the query's first relevant passage in the BM25 run of that "
             f"collection (solved: within the top {SOLVED_AT}).", ""]
    for s in section:
        q = s["quantiles"]
        lines += [f"### {s['a']} − {s['b']}, {s['lang']} ({s['queries']} queries)", "",
                  f"Mean {s['mean']:+.4f}; better on {s['better']}, worse on {s['worse']}, equal on {s['same']}. "
                  "Quantiles (min, 10%, 25%, median, 75%, 90%, max): "
                  + ", ".join(f"{q[p]:+.4f}" for p in (0, 10, 25, 50, 75, 90, 100)) + ".", ""]
        solved, unsolved = s["bm25_solved"], s["bm25_unsolved"]
        if solved["queries"] or unsolved["queries"]:
            fmt = lambda v: "–" if v is None else f"{v:+.4f}"  # noqa: E731
            lines += [f"Mean difference on the {solved['queries']} queries BM25 solves: {fmt(solved['mean'])}; on "
                      f"the {unsolved['queries']} others: {fmt(unsolved['mean'])}.", ""]
        lines += ["| | query | words | relevant | BM25 first relevant | a | b | Δ |", "|---" * 8 + "|"]
        for label, rows in (("gain", s["gains"]), ("loss", s["losses"])):
            for r in rows:
                text = r["text"] if len(r["text"]) <= 60 else r["text"][:57] + "…"
                lines.append(f"| {label} | {r['query']}: {text.replace('|', '/')} | {r['words']} | {r['relevant']} | "
                             f"{r['bm25_first'] or '–'} | {r['a']:.4f} | {r['b']:.4f} | {r['delta']:+.4f} |")
        lines.append("")
    return lines
