"""Benchmarks (``make bench``): speed targets live here, never in timed tests.

    python -m clir_ot.bench [--only sinkhorn,pot_batch,step,search,metrics,encode] [--out bench/results.json]

Every result records the machine (CPU model, threads, AVX-512 / bf16 / AMX flags) and is kept under
``"<name> (<kind of CPU>)"``, so that the kinds of development machine do not overwrite each other.
``make bench ISA=avx2`` runs the encode benchmark on AVX2 code paths only (``ONEDNN_MAX_CPU_ISA=AVX2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``): an AVX2-only CPU's instruction set emulated on a
newer CPU, not its clock or caches; the kind then says so (:func:`isa_cap`).

1. sinkhorn: batched log-domain Sinkhorn vs POT solving the same pairs one by one (B=32, n=m=48, reg 0.05).
   pot_batch: the same against POT's own batched log-domain solver (``ot.batch``) on padded batches.
2. step: one OT training step vs one KD step on the same batch (me5-small student, self-teacher), in fp32 and,
   where ``--precision auto`` picks bf16 on this CPU, under bf16 autocast (``cpu_bf16``).
3. search: exact chunked search vs FAISS IndexFlatIP (49,043 × 384, 119 queries).
4. metrics: clir_ot.eval.metrics vs ir_measures over the dev qrels of the six languages.
5. encode: me5-small passages/s on yo passages, unsorted vs length-sorted, fp32 vs bf16 (where the CPU has
   native bf16 instructions) vs int8, with the cosine of each variant to fp32, against the matrix-product
   ceiling of the machine in fp32, bf16 and int8.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .artifacts import cpu_generation, hardware
from .models.precision import BF16_CPU_FLAGS, matmul_gflops, precision_choice


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_sinkhorn() -> dict:
    import ot

    from .distill.sinkhorn import sinkhorn

    g = torch.Generator().manual_seed(0)
    B, n, reg = 32, 48, 0.05
    t = torch.nn.functional.normalize(torch.randn(B, n, 64, generator=g), dim=-1)
    s = torch.nn.functional.normalize(torch.randn(B, n, 64, generator=g), dim=-1)
    M = 1 - t @ s.transpose(1, 2)
    a = torch.full((B, n), 1 / n)
    b = torch.full((B, n), 1 / n)
    kw = dict(num_iter=1000, stop_thr=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = timed(lambda: sinkhorn(a, b, M, reg, **kw))
        Md, ad = M.double().numpy(), a[0].double().numpy()
        pot = timed(lambda: [ot.sinkhorn(ad, ad, Md[i], reg, method="sinkhorn_log", numItermax=1000, stopThr=1e-6)
                             for i in range(B)])
        P = sinkhorn(a, b, M, reg, **kw).numpy()
        ref = np.stack([ot.sinkhorn(ad, ad, Md[i], reg, method="sinkhorn_log", numItermax=1000, stopThr=1e-6)
                        for i in range(B)])
    return {"batched_s": ours, "pot_loop_s": pot, "speedup": pot / ours, "max_abs_diff": float(np.abs(P - ref).max()),
            "setting": f"B={B}, n=m={n}, reg={reg}, stop 1e-6, CPU threads {torch.get_num_threads()}"}


def bench_pot_batch() -> dict:
    """Our batched Sinkhorn vs POT's batched log-domain solver (``ot.batch.solve_batch``) on padded batches
    (random lengths, zero mass on padding), solve alone and solve + envelope gradient of the OT value."""
    import ot.batch

    from .distill.sinkhorn import sinkhorn

    g = torch.Generator().manual_seed(0)
    B, n, reg, kw = 32, 48, 0.05, dict(num_iter=1000, stop_thr=1e-6)
    lengths_t = torch.randint(8, n + 1, (B,), generator=g)
    lengths_s = torch.randint(8, n + 1, (B,), generator=g)
    mask_t = torch.arange(n)[None, :] < lengths_t[:, None]
    mask_s = torch.arange(n)[None, :] < lengths_s[:, None]
    a = mask_t.float() / lengths_t[:, None]
    b = mask_s.float() / lengths_s[:, None]
    t = torch.nn.functional.normalize(torch.randn(B, n, 64, generator=g), dim=-1)
    s = torch.nn.functional.normalize(torch.randn(B, n, 64, generator=g), dim=-1)

    def cost(requires_grad: bool) -> torch.Tensor:
        return (1 - t @ s.transpose(1, 2)).requires_grad_(requires_grad)

    def ours_solve() -> torch.Tensor:
        return sinkhorn(a, b, cost(False), reg, **kw)

    def pot_solve() -> torch.Tensor:
        return ot.batch.solve_batch(cost(False), reg, a, b, max_iter=1000, tol=1e-6, method="log_sinkhorn",
                                    grad="detach").plan

    def ours_grad() -> None:
        M = cost(True)
        (sinkhorn(a, b, M, reg, **kw) * M).sum().backward()

    def pot_grad() -> None:
        M = cost(True)
        ot.batch.solve_batch(M, reg, a, b, max_iter=1000, tol=1e-6, method="log_sinkhorn",
                             grad="envelope").value.sum().backward()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P, Q = ours_solve(), pot_solve()
        out = {"ours_solve_s": timed(ours_solve), "pot_solve_s": timed(pot_solve),
               "ours_solve_and_grad_s": timed(ours_grad), "pot_solve_and_grad_s": timed(pot_grad)}
    out |= {"pot_over_ours_solve": out["pot_solve_s"] / out["ours_solve_s"],
            "pot_over_ours_grad": out["pot_solve_and_grad_s"] / out["ours_solve_and_grad_s"],
            "max_abs_plan_diff": float((P - Q.float()).abs().max()),
            "pot_plan_finite": bool(torch.isfinite(Q).all()),
            "setting": f"B={B}, lengths 8..{n} (padded to {n}), reg={reg}, tol 1e-6, CPU threads "
                       f"{torch.get_num_threads()}, POT {ot.__version__}"}
    return out


def isa_cap() -> str | None:
    """The instruction set oneDNN is capped at (``$ONEDNN_MAX_CPU_ISA``), if any."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or None


def machine_kind(flags: frozenset[str], cpu: str, cap: str | None = None, generation: str = "") -> str:
    """The kind of CPU, as the README's tables name it: results are kept per kind, since the kinds differ. The
    ``generation`` (``family 25 model 17``) tells apart machines whose model name and flags are the same but whose
    speed is not (docs/performance.md); a run with the instruction set capped (``cap``) is its own kind."""
    vendor = "AMD" if "AMD" in cpu else "Intel" if "Intel" in cpu else "CPU"
    if "amx_bf16" in flags:
        kind = f"{vendor}, AMX"
    else:
        kind = f"{vendor}, AVX-512, no AMX" if "avx512f" in flags else f"{vendor}, AVX2 only"
    kind += f", {generation}" if generation else ""
    return f"{kind}, capped at {cap} (emulation)" if cap else kind


def bench_step(student: str = "me5-small") -> dict:
    from .data.training import DEMO_BITEXT, DEMO_LEXICON, load_training_data
    from .distill import components, trainer
    from .distill.config import DistillConfig

    data = load_training_data([DEMO_BITEXT], DEMO_LEXICON, "sw")
    out = {}
    examples = next(components.batches(data, DistillConfig(batch_size=16)))
    # bf16 autocast (``cpu_bf16``) is timed too where ``auto`` would encode in bf16 on this CPU
    autocasts = (False, True) if precision_choice("auto", "cpu")["precision"] == "bf16" else (False,)
    for method in ("kd", "ot"):
        cfg = DistillConfig(method=method, student=student, batch_size=16, max_length=64)
        models = components.build_models(cfg, torch.device("cpu"))
        optimizer, _ = components.make_optimizer(models, cfg)
        for bf16 in autocasts:
            def step(models=models, cfg=cfg, optimizer=optimizer, bf16=bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = trainer.compute_losses(models, cfg, examples, "passage")["loss"]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            out[f"{method}_step{'_bf16' if bf16 else ''}_s"] = timed(step, repeat=3)
    out["ot_over_kd"] = out["ot_step_s"] / out["kd_step_s"]
    # matrix-product work of a KD step: the teacher's forward pass on English, the student's forward and
    # backward passes (≈ 3 forwards) on English and on x — linear layers only, attention not counted
    student = models.student
    tokens_en = int(student.tokenize([e.en for e in examples], "passage", 64)["attention_mask"].sum())
    tokens_x = int(student.tokenize([e.x for e in examples], "passage", 64)["attention_mask"].sum())
    flops = linear_flops_per_token(student.model) * (tokens_en + 3 * (tokens_en + tokens_x))
    config = student.model.config
    out |= {"kd_step_linear_gflop": flops / 1e9, "kd_step_effective_gflops": flops / 1e9 / out["kd_step_s"],
            "sgemm_ceiling_gflops": sgemm_gflops(config.hidden_size, config.intermediate_size)}
    if "kd_step_bf16_s" in out:
        out |= {"kd_step_bf16_effective_gflops": flops / 1e9 / out["kd_step_bf16_s"],
                "bf16_matmul_ceiling_gflops": sgemm_gflops(config.hidden_size, config.intermediate_size,
                                                           dtype=torch.bfloat16)}
    out["setting"] = (f"{student.source}, batch 16 pairs, max 64 tokens, word embedding frozen, CPU fp32"
                      + (" and bf16 autocast" if len(autocasts) == 2 else ""))
    return out


def bench_search() -> dict:
    from .retrieval.search import exact_search, faiss_search

    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(49043, 384)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.choice(len(corpus), 119)] + 0.01
    out = {"exact_s": timed(lambda: exact_search(queries, corpus, 1000))}
    try:
        out["faiss_s"] = timed(lambda: faiss_search(queries, corpus, 1000))
        out["same_top1000"] = bool((exact_search(queries, corpus, 1000)[1] == faiss_search(queries, corpus, 1000)[1])
                                   .mean() > 0.999)
    except Exception as exc:  # faiss not installed
        out["faiss"] = f"unavailable: {exc}"
    out["setting"] = "49,043 × 384 float32, 119 queries, depth 1000"
    return out


def bench_metrics() -> dict:
    import ir_measures

    from .data import miracl
    from .eval import metrics
    from .languages import EVAL_LANGUAGES

    rng = random.Random(0)
    qrels_all, runs = {}, {}
    for lang in EVAL_LANGUAGES:
        qrels = metrics.qrels_dict(miracl.load_qrels(lang))
        docs = sorted({d for j in qrels.values() for d in j})
        qrels_all[lang] = qrels
        runs[lang] = {q: {d: rng.random() for d in rng.sample(docs, min(len(docs), 1000))} for q in qrels}
    measures = [ir_measures.parse_measure(m) for m in ("R@100", "AP", "nDCG@10", "RR@10")]
    ours = timed(lambda: [metrics.evaluate(qrels_all[k], runs[k]) for k in qrels_all], repeat=1)
    ref = timed(lambda: [ir_measures.calc_aggregate(measures, qrels_all[k], runs[k]) for k in qrels_all], repeat=1)
    n_queries = sum(len(q) for q in qrels_all.values())
    return {"clir_ot_s": ours, "ir_measures_s": ref, "ratio": ours / ref,
            "setting": f"{n_queries} queries (six dev qrels), runs of 1000 documents"}


def linear_flops_per_token(model: torch.nn.Module) -> int:
    """2 · in · out summed over the linear layers: the matrix-product FLOPs one token costs."""
    return sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def sgemm_gflops(hidden: int, ffn: int, rows: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Best matrix-product rate (GFLOP/s) in ``dtype`` at the encoder's own shapes: the ceiling for encoding
    in that dtype."""
    return max(matmul_gflops(dtype, (rows, k, n)) for k, n in ((hidden, ffn), (ffn, hidden), (hidden, hidden)))


def int8_matmul_gops(shape: tuple[int, int, int], repeat: int = 5) -> float:
    """Best rate (GOP/s) of ``repeat`` int8 × int8 → int32 products of ``shape`` (``torch._int_mm``, what the int8
    recipe runs), after one warm-up."""
    rows, k, n = shape
    a, b = torch.randint(-127, 128, (rows, k), dtype=torch.int8), torch.randint(-127, 128, (k, n), dtype=torch.int8)
    return 2 * rows * k * n / timed(lambda: torch._int_mm(a, b), repeat) / 1e9


def bench_encode(n: int = 1000) -> dict:
    """me5-small on ``n`` random yo passages: unsorted vs length-sorted fp32, bf16 weights (only where the CPU has
    native bf16 instructions: elsewhere it is emulated, at 1–2 GFLOP/s) and the int8 recipe, each with its
    cosine to fp32 and timed after a first batch of 32 (timed apart: bf16 compiles its CPU attention there);
    each rate is set against the machine's matrix-product ceiling in that type, which bounds any runtime; and
    what ``--precision auto`` picks here from the hardware alone."""
    from .artifacts import cpu_flags
    from .data import miracl
    from .models import load_encoder

    docs = [d.text for d in miracl.iter_docs("yo")]
    texts = random.Random(0).sample(docs, n)
    out: dict = {"setting": f"me5-small, {n} random yo passages, batch 32, CPU threads {torch.get_num_threads()}"}
    native_bf16 = bool(set(BF16_CPU_FLAGS) & cpu_flags()) and not isa_cap()
    variants = [("fp32_unsorted", "fp32", False), ("fp32_sorted", "fp32", True)] + (
        [("bf16_sorted", "bf16", True)] if native_bf16 else []) + [("int8_sorted", "int8", True)]
    ref = None
    for name, precision, sort in variants:
        enc = load_encoder("me5-small").set_precision(precision)
        t = time.perf_counter()
        enc.encode(texts[:32], "passage", batch_size=32)  # bf16 compiles its CPU attention on the first call
        out[f"{name}_first_batch_s"] = time.perf_counter() - t
        t = time.perf_counter()
        emb = enc.encode(texts, "passage", batch_size=32, sort_by_length=sort)
        out[f"{name}_passages_per_s"] = n / (time.perf_counter() - t)
        ref = emb if ref is None else ref
        cosine = (emb * ref).sum(1)
        out[f"{name}_cos_to_fp32_min_mean"] = [float(cosine.min()), float(cosine.mean())]
    enc = load_encoder("me5-small")
    tokens = sum(len(ids) for ids in enc.tokenizer([enc.spec.passage_prefix + t for t in texts], truncation=True,
                                                   max_length=enc.spec.max_length)["input_ids"])
    flops = linear_flops_per_token(enc.model) * tokens / n  # per passage, attention not counted
    hidden, ffn = enc.model.config.hidden_size, enc.model.config.intermediate_size
    ceiling = sgemm_gflops(hidden, ffn)
    out |= {"tokens_per_passage": tokens / n, "linear_gflop_per_passage": flops / 1e9,
            "sgemm_ceiling_gflops": ceiling,
            "int8_matmul_ceiling_gops": max(int8_matmul_gops((2048, k, m)) for k, m in
                                            ((hidden, ffn), (ffn, hidden), (hidden, hidden))),
            "full_yo_minutes_at_sgemm_ceiling": len(docs) * flops / (ceiling * 1e9) / 60}
    if not isa_cap():  # auto's choice reads this machine's uncapped measurements
        out["auto_precision"] = precision_choice("auto", "cpu")
    if native_bf16:
        out["bf16_matmul_ceiling_gflops"] = sgemm_gflops(hidden, ffn, dtype=torch.bfloat16)
    for name, _, sort in variants:
        if sort:
            out[f"{name}_effective_gflops"] = out[f"{name}_passages_per_s"] * flops / 1e9  # int8: GOP/s
            out[f"full_yo_minutes_{name}"] = len(docs) / out[f"{name}_passages_per_s"] / 60
    return out


BENCHES = {"sinkhorn": bench_sinkhorn, "pot_batch": bench_pot_batch, "step": bench_step, "search": bench_search,
           "metrics": bench_metrics, "encode": bench_encode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    here = hardware()  # the CPU every benchmark ran on: model and the flags that decide speed
    kind = machine_kind(frozenset(here["cpu_flags"]), here["cpu"] or "", isa_cap(), cpu_generation())
    for name in args.only.split(","):
        print(f"== {name} ({kind})", flush=True)
        key = f"{name} ({kind})"
        results[key] = BENCHES[name]() | {"measured": time.strftime("%Y-%m-%d %H:%M"), "machine": here}
        print(json.dumps(results[key], indent=2), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
