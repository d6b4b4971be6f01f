"""The whole experiment from one YAML file (:mod:`clir_ot.experiment`): baselines, each condition ×
seed distilled and evaluated, curve points at declared steps, the partial-pool diagnostic, OT
alignment heatmaps, the report, and the check of expected scores.

    clir-ot reproduce experiments/zero_shot_miracl.yaml --profile cpu     # what `make reproduce` runs

Stages write into ``RUNS/<experiment>/<profile>/`` (folder names from :mod:`clir_ot.layout`, which the
report reads through too):

    baselines/<system>/            clir-ot evaluate outputs (BM25, teacher alone, student before)
    distill/<condition>-s<seed>/   clir-ot distill outputs (snapshots/ while their curve points are pending)
    eval/<condition>-s<seed>/      clir-ot evaluate outputs of each student
    clir/<system>/<query encoder>/ bible-clir (the positive control) of before, BM25 and each student, its
                                   English queries encoded by the student or by the frozen teacher;
                                   clir/<system>/documents/ the document embeddings both share
    curves/<condition>-s<seed>/    evaluations of the snapshots (and, with a curve_pool, of the last step);
                                   curves/<condition>-s<seed>.json the curve; curves/before/ the student before
                                   on a curve_pool
    probe/token/<system>.json      token-alignment probe (held-out verses, FreeDict lexicons) of before and students
    diag/<system>.json             partial-pool diagnostic (labelled: NOT MIRACL)
    explain/                       OT plans on UDHR pairs, before and after OT distillation

``manifest.json`` at the top registers the experiment's pre-registered hypotheses (their sha256, the commit and
the time) before the first stage: a run folder whose registered family differs from the file's is refused.

Every stage goes through :func:`clir_ot.artifacts.stage_state`: a finished stage whose inputs hash the same is skipped
(and says so), an interrupted distillation resumes from its checkpoint, and a finished distillation
with a *different* configuration is refused (never silently overwritten).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .artifacts import (
    config_hash,
    folder_lock,
    hardware,
    package_versions,
    require_folder,
    stage_state,
    write_json_atomic,
    write_yaml_atomic,
)
from .config import key_dict, result_key
from .data import miracl
from .errors import ClirOtError
from .eval.drift import ENGLISH_DRIFT_VERSES, drift, english_drift, english_embeddings
from .eval.evaluate import evaluate as run_evaluate
from .eval.variants import variant_name
from .experiment import Experiment, load_experiment
from .inputs import read_json_or_none
from .layout import (
    BEFORE,
    CLIR_LEXICAL,
    FULL_CORPUS_BM25,
    baseline_dir,
    clir_dir,
    curve_before_dir,
    curve_file,
    diag_file,
    distill_dir,
    drift_file,
    eval_dir,
    geometry_file,
    layer_suffix,
    run_tag,
    snapshot_dir,
    student_dir,
    token_probe_file,
    variant_dir,
)
from .models.device import resolve_device
from .registration import REGISTRATION, family_sha256, read_registration, record_stage

Log = Callable[[str], None]
__all__ = ["Experiment", "load_experiment", "reproduce"]


def git_commit() -> dict[str, Any]:
    """The commit of the source tree this package runs from and whether it had uncommitted changes (``None``
    where it is not a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def register_hypotheses(exp: Experiment, root: Path) -> dict | None:
    """Fix the experiment's hypotheses to the run folder ``root`` before its first stage: write ``manifest.json``
    (the family, its sha256, the commit, the time) the first time; refuse a family that differs from the
    registered one, and refuse to register a family into a folder whose distillations have already started.
    Returns the registration (``None`` for an experiment without hypotheses in a folder without one)."""
    family = exp.hypotheses or []
    digest = family_sha256(family)
    path = root / REGISTRATION
    saved = read_registration(root)
    if saved is not None:
        if saved["hypotheses_sha256"] != digest:
            raise ClirOtError(f"{root} registered other hypotheses (sha256 {saved['hypotheses_sha256'][:12]}, commit "
                              f"{str(saved.get('commit'))[:12]}, {saved.get('registered')}) than {exp.name}'s "
                              f"{exp.profile} profile now declares (sha256 {digest[:12]}); a pre-registered family "
                              "does not change once registered: restore it, or use another --runs-dir")
        return saved
    if not family:
        return None
    started = sorted(p.name for p in (root / "distill").iterdir()) if (root / "distill").is_dir() else []
    if started:
        raise ClirOtError(f"{root} already holds distillations ({', '.join(started[:3])}"
                          f"{', ...' if len(started) > 3 else ''}) made without registered hypotheses; hypotheses "
                          "are fixed before the first distillation: use another --runs-dir")
    record = {"stage": "reproduce", "experiment": exp.name, "profile": exp.profile, "hypotheses": family,
              "hypotheses_sha256": digest, **git_commit(), "registered": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json_atomic(path, record)
    return record


def run_distill(exp: Experiment, condition: str, seed: int, root: Path, log: Log) -> Path:
    from .distill.checkpoint import UnreadableCheckpointError, has_checkpoint
    from .distill.trainer import train, training_data

    cfg = exp.distill_config(condition, seed)
    out = distill_dir(root, condition, seed)
    state = stage_state(out / "manifest.json", result_key(cfg))
    if state == "done":
        saved = ((read_json_or_none(out / "manifest.json") or {}).get("training_data") or {}).get("key")
        if saved == training_data(cfg).key():
            log(f"skip distill {condition} seed {seed}: done with the same configuration and training data")
            return out
        raise ClirOtError(f"{out} was trained on other training data (the files' contents or the rows kept from "
                          "them changed); move it away or use another --runs-dir")
    if state == "other":
        raise ClirOtError(f"{out} was trained with another configuration; move it away or use another --runs-dir")
    resume = has_checkpoint(out)
    if out.exists() and not resume:
        log(f"restart distill {condition} seed {seed}: interrupted before its first checkpoint")
    log(f"{'resume' if resume else 'run'} distill {condition} seed {seed} ({cfg.steps} steps)")
    registration = read_registration(root)  # the family this student is trained under, recorded beside it
    try:
        train(cfg, out, resume=resume, overwrite=not resume)
    except UnreadableCheckpointError as exc:  # never unpickled: discarded, and the student trained from step 0
        log(f"restart distill {condition} seed {seed}: its checkpoint is not one this clir-ot reads ({exc})")
        train(cfg, out, resume=False, overwrite=True)
    record_stage(out, registration)
    return out


def run_eval(exp: Experiment, model: str, out: Path, pool: int | None, log: Log, variant: str | None = None) -> None:
    log(f"evaluate {model}{f' as {variant}' if variant else ''} → {out}")
    results = run_evaluate(exp.eval_config(model, pool, variant), out)
    for r in results:
        if r.status == "ok":
            log(f"  {r.lang}: R@100 {r.metrics['R@100']:.4f} nDCG@10 {r.metrics['nDCG@10']:.4f}"
                + ("  (reused: same configuration, weights, corpus and judgements)" if r.reused else ""))


def run_clir(exp: Experiment, system: str, model: str, root: Path, log: Log) -> None:
    """bible-clir (the positive control) of ``model`` with each declared query encoder; BM25 variants take
    their own queries only."""
    if not exp.clir_langs:
        return
    encoders = ["student"] if model in CLIR_LEXICAL else exp.clir_query_encoders
    for query_encoder in encoders:
        out = clir_dir(root, system, query_encoder)
        log(f"bible-clir {system} (queries: {query_encoder}) → {out}")
        for r in run_evaluate(exp.clir_config(model, query_encoder), out):
            if r.status == "ok":
                log(f"  {r.lang}: R@1 {r.metrics['R@1']:.4f} MRR@10 {r.metrics['RR@10']:.4f}"
                    + ("  (reused)" if r.reused else ""))


def run_token_probe(exp: Experiment, system: str, model: str, root: Path, log: Log,
                    layers: tuple[int, int] = (-1, -1)) -> None:
    """The token-alignment probe (:mod:`clir_ot.distill.token_probe`) of ``model`` against the teacher, the
    token states read at ``layers`` (teacher, student): the layers the condition aligned. The student before is
    probed at every pair some condition aligns (``before``, ``before-layer6``: :func:`~clir_ot.layout.layer_suffix`)."""
    from .distill.token_probe import token_alignment_probe
    from .models import load_encoder
    from .models.loading import model_fingerprint

    if not exp.token_probe_pairs or not exp.clir_langs:
        return
    reg = _ot_reg(exp, _ot_condition(exp))
    cfg = {"model": model_fingerprint(model), "teacher": model_fingerprint(exp.teacher_model),
           "langs": exp.clir_langs, "pairs": exp.token_probe_pairs, "reg": reg}
    if layers != (-1, -1):
        cfg["layers"] = list(layers)
    out = token_probe_file(root, system + layer_suffix(*layers) if system == BEFORE else system)
    if stage_state(out, config_hash(cfg)) == "done":
        return
    log(f"token-alignment probe {system}" + (f" (teacher layer {layers[0]}, student layer {layers[1]})"
                                             if layers != (-1, -1) else ""))
    result = token_alignment_probe(load_encoder(model), load_encoder(exp.teacher_model), exp.clir_langs, reg=reg,
                                   limit=exp.token_probe_pairs, teacher_layer=layers[0], student_layer=layers[1])
    write_json_atomic(out, {"config_hash": config_hash(cfg), "reg": reg, "layers": list(layers), "results": result})


def run_drift(exp: Experiment, tag: str, model: str, root: Path, log: Log) -> None:
    """A student's drift from the student before on the evaluation language's passages (from the two saved
    evaluations: :func:`drift`) and on held-out English verses (:func:`english_drift`)."""
    from .models.loading import model_fingerprint

    cfg = {"model": model_fingerprint(model), "before": model_fingerprint(exp.student),
           "precision": exp.eval_precision, "english_verses": ENGLISH_DRIFT_VERSES,
           "eval": key_dict(exp.eval_config("x", exp.eval_pool)) | {"model": None}}
    out = drift_file(root, tag)
    if stage_state(out, config_hash(cfg)) == "done":
        return
    condition, _, seed = tag.rpartition("-s")
    log(f"drift {tag} (passages and English verses)")
    write_json_atomic(out, {"config_hash": config_hash(cfg), "passages": drift(root, exp, eval_dir(root, condition,
                                                                                             int(seed))),
                            "english": english_drift(exp, model)})


def run_geometry(exp: Experiment, tag: str, model: str, evaluation: Path, root: Path, log: Log) -> None:
    """Geometry readouts (:mod:`clir_ot.eval.geometry`) of ``model`` from the passage embeddings its evaluation
    searched (``evaluation``), its queries and held-out English verses (encoded again: cheap)."""
    from .eval.evaluate import query_embeddings, selected_queries
    from .eval.geometry import readouts
    from .eval.saved import saved_embeddings
    from .models.loading import model_fingerprint
    from .retrieval.encode import load_embeddings

    cfg = exp.eval_config(model, exp.eval_pool)
    lang = next((la for la in exp.eval_langs if saved_embeddings(evaluation / la) is not None), None)
    if lang is None:
        return
    key = config_hash({"model": model_fingerprint(model), "eval": key_dict(cfg) | {"model": None}, "lang": lang,
                       "english_verses": ENGLISH_DRIFT_VERSES, "version": 1})
    out = geometry_file(root, tag)
    if stage_state(out, key) == "done":
        return
    log(f"geometry {tag} ({lang} passages and queries, English verses)")
    doc_ids, passages, _, _ = load_embeddings(saved_embeddings(evaluation / lang))
    queries = selected_queries(lang, cfg)
    q = query_embeddings(model, cfg.precision, [x.text for x in queries], cfg.batch_size)
    row = {d: i for i, d in enumerate(doc_ids)}
    judged = cfg.bench.judged_qrels(lang, cfg.split, queries)
    relevant = [[row[d] for d, rel in judged.get(x.query_id, {}).items() if rel > 0 and d in row] for x in queries]
    english = english_embeddings(model, exp.eval_precision, exp.eval_batch_size)
    write_json_atomic(out, {"config_hash": key, "lang": lang, "corpus": cfg.corpus_label(lang),
                            **readouts(passages, q, relevant, english)})


def run_diagnostic(exp: Experiment, model: str, out: Path, log: Log) -> None:
    from .data.partial import LABEL, load_partial
    from .models import load_encoder
    from .models.loading import model_fingerprint
    from .retrieval.dense import evaluate_collection

    cfg = {"model": model, "weights": model_fingerprint(model), "langs": exp.diagnostic_langs,
           "max_passages": exp.diagnostic_max_passages}
    if stage_state(out, config_hash(cfg)) == "done":
        log(f"skip diagnostic {model}: done with the same weights (sha256)")
        return
    log(f"partial-pool diagnostic {model}")
    encoder = load_encoder(model)
    results = {}
    for lang in exp.diagnostic_langs:
        docs, queries, qrels = load_partial(lang, exp.diagnostic_max_passages)
        results[lang] = evaluate_collection(encoder, docs, queries, qrels, depth=100, batch_size=exp.eval_batch_size)
    write_json_atomic(out, {"config_hash": config_hash(cfg), "config": cfg, "label": LABEL, "results": results})


def _ot_condition(exp: Experiment) -> str | None:
    """The first condition whose objective has the OT term (whatever its method field says), if any."""
    from .distill.objective import uses_ot

    return next((c for c in exp.condition_names() if uses_ot(exp.distill_config(c, exp.seeds_of(c)[0]))), None)


def _ot_reg(exp: Experiment, ot_condition: str | None) -> float:
    """The entropic regularisation of OT plans drawn outside training: the OT condition's, else the default."""
    if ot_condition is None:
        return exp.distill_config(exp.condition_names()[0], exp.seeds_of(exp.condition_names()[0])[0]).ot_reg
    return exp.distill_config(ot_condition, exp.seeds_of(ot_condition)[0]).ot_reg


def run_explain(exp: Experiment, root: Path, log: Log) -> None:
    from .distill.explain import explain_udhr
    from .models.loading import model_fingerprint

    ot_condition = _ot_condition(exp)
    teacher = exp.teacher if exp.teacher != "self" else exp.student
    models = [("before", exp.student)]
    reg = _ot_reg(exp, ot_condition)
    if ot_condition:
        seed = exp.seeds_of(ot_condition)[0]
        if student_dir(root, ot_condition, seed).is_dir():
            models.append(("after-ot", str(student_dir(root, ot_condition, seed))))
    for name, model in models:
        out = root / "explain" / name
        key = config_hash({"student": model_fingerprint(model), "teacher": model_fingerprint(teacher),
                           "reg": reg, "langs": exp.eval_langs, "pairs": exp.explain_pairs})
        if (out / "alignments.json").is_file() and stage_state(out / "inputs.json", key) == "done":
            continue
        log(f"explain {name}: OT plans on UDHR pairs")
        explain_udhr(model, teacher, exp.eval_langs, out, pairs_per_lang=exp.explain_pairs, reg=reg)
        write_json_atomic(out / "inputs.json", {"config_hash": key})


def probe_of(model: str, exp: Experiment) -> dict:
    """The held-out UDHR probe of ``model`` against the experiment's teacher."""
    from .distill.probe import translation_probe
    from .models import load_encoder

    student = load_encoder(model)
    teacher = load_encoder(exp.teacher if exp.teacher != "self" else exp.student)
    return translation_probe(student, teacher, exp.distill_config(exp.condition_names()[0], 0).probe_langs)


def run_curve(exp: Experiment, condition: str, seed: int, root: Path, log: Log) -> None:
    """The curve of one student: step 0 (the student before), each declared step (its snapshot, evaluated,
    probed and measured for drift, then deleted) and the last step; written to ``curves/<tag>.json``. With a
    ``curve_pool`` of their own, step 0 and the last step are evaluated on that pool too, so that every point
    of a curve searched the same passages."""
    cfg = exp.distill_config(condition, seed)
    manifest = read_json_or_none(distill_dir(root, condition, seed) / "manifest.json") or {}
    pool = exp.curve_eval_pool
    key = config_hash({"distill": manifest.get("config_hash"), "steps": exp.curve_steps,
                       "eval": key_dict(exp.eval_config("x", pool)) | {"model": None}})
    out = curve_file(root, condition, seed)
    if stage_state(out, key) == "done":
        return
    before_eval, final_eval = baseline_dir(root, exp.student), eval_dir(root, condition, seed)
    if exp.separate_curve_pool:
        before_eval, final_eval = curve_before_dir(root), eval_dir(root, condition, seed, cfg.steps)
        run_eval(exp, exp.student, before_eval, pool, log)  # reused after the first curve
        run_eval(exp, str(student_dir(root, condition, seed)), final_eval, pool, log)
    probe = manifest.get("probe") or {}
    points = [{"step": 0, "eval": str(before_eval), "drift": {"cosine": 1.0, "drift": 0.0},
               "probe": (probe.get("before") or {}).get("probe")}]
    for step in exp.curve_steps:
        point_dir = eval_dir(root, condition, seed, step)
        point_file = point_dir / "point.json"
        if stage_state(point_file, key) != "done":
            snapshot = snapshot_dir(root, condition, seed, step)
            if not snapshot.is_dir():
                raise ClirOtError(f"{snapshot} is missing: the curve point of {run_tag(condition, seed)} at step "
                                  f"{step} cannot be measured; delete {distill_dir(root, condition, seed)} to retrain")
            log(f"curve {run_tag(condition, seed)} step {step}")
            run_eval(exp, str(snapshot), point_dir, pool, log)
            write_json_atomic(point_file, {"config_hash": key, "probe": probe_of(str(snapshot), exp),
                                           "drift": drift(root, exp, point_dir, before_eval)})
            shutil.rmtree(snapshot)  # the weights need not be kept: the point is measured
        saved = read_json_or_none(point_file) or {}
        points.append({"step": step, "eval": str(point_dir), "drift": saved.get("drift"), "probe": saved.get("probe")})
    points.append({"step": cfg.steps, "eval": str(final_eval), "drift": drift(root, exp, final_eval, before_eval),
                   "probe": (probe.get("after") or {}).get("probe")})
    for point in points:
        folder = Path(point.pop("eval"))
        point["metrics"] = {lang: (read_json_or_none(folder / lang / "metrics.json") or {}).get("result", {})
                            .get("metrics") for lang in exp.eval_langs if (folder / lang / "metrics.json").is_file()}
    write_json_atomic(out, {"config_hash": key, "condition": condition, "seed": seed, "points": points})


def refuse_slow_cpu_bf16(exp: Experiment) -> None:
    """Refuse, before any stage, a profile that evaluates in bf16 or trains under bf16 autocast on a CPU where
    ``--precision auto`` would not take bf16 (no native bf16 instructions, or bf16 matrix products too slow:
    :func:`~clir_ot.models.precision.precision_choice`): there it would run for many hours, or forever."""
    from .models.precision import precision_choice

    wants = []
    if exp.eval_precision == "bf16" and resolve_device("auto").type == "cpu":
        wants.append("evaluates in bf16")
    if any(cfg.cpu_bf16 and resolve_device(cfg.device).type == "cpu"
           for cfg in (exp.distill_config(c, s) for c in exp.condition_names() for s in exp.seeds_of(c))):
        wants.append("trains under bf16 autocast")
    if wants and (choice := precision_choice("auto", "cpu"))["precision"] != "bf16":
        raise ClirOtError(f"profile {exp.profile} {' and '.join(wants)} on the CPU, and bf16 does not pay on this "
                          f"one ({choice['reason']}); run a profile in fp32 (cpu)")


def reproduce(experiment: Path, profile: str, runs_dir: Path, reports_dir: Path, log: Log) -> Path:
    """Run every stage (skipping finished ones), write the report and check the profile's expected scores;
    return the report folder."""
    started = time.time()
    exp = load_experiment(experiment, profile)
    for folder in (runs_dir, reports_dir):  # a file where a folder belongs: one line now, not after every stage
        require_folder(Path(folder))
    for condition in exp.condition_names():  # a device this machine lacks stops the run before any stage
        resolve_device(exp.distill_config(condition, exp.seeds_of(condition)[0]).device)
    refuse_slow_cpu_bf16(exp)
    root = Path(runs_dir) / exp.name / profile
    from .eval.report import claim_report_folder

    claim_report_folder(Path(reports_dir) / exp.name / profile, root, exp)  # before any stage, not after them
    with folder_lock(root, "reproduce"):
        register_hypotheses(exp, root)
        report_dir = _reproduce(exp, root, Path(reports_dir), started, log)
    if exp.expected:
        from .eval.expected import check_expected

        mismatches = check_expected(report_dir / "results.json", exp.expected)
        if mismatches:
            raise ClirOtError(f"the {profile} scores differ from those expected in {experiment}: "
                              + "; ".join(mismatches))
        log(f"expected scores: all {_count_scores(exp.expected)} match")
    return report_dir


def _count_scores(tree: dict) -> int:
    """The number of leaf values of a nested mapping (expected scores)."""
    return sum(_count_scores(v) if isinstance(v, dict) else 1 for v in tree.values())


def _student_stages(exp: Experiment, c: str, s: int, root: Path, stage: Callable[[str, Callable[[], None]], None],
                    log: Log) -> None:
    """Every stage of one student, in order: distillation, evaluation and its variants, bible-clir, token probe,
    drift, geometry and the curve."""
    tag, student = run_tag(c, s), str(student_dir(root, c, s))
    stage(f"distill {tag}", lambda: run_distill(exp, c, s, root, log))
    stage(f"evaluate {tag}", lambda: run_eval(exp, student, eval_dir(root, c, s), exp.eval_pool, log))
    for variant in exp.variants_of(c):
        stage(f"evaluate {variant_name(tag, variant)}", lambda v=variant: run_eval(
            exp, student, variant_dir(root, v, tag), exp.eval_pool, log, v))
    stage(f"bible-clir {tag}", lambda: run_clir(exp, tag, student, root, log))
    stage(f"token probe {tag}", lambda: run_token_probe(exp, tag, student, root, log, exp.aligned_layers(c)))
    if exp.drift:
        stage(f"drift {tag}", lambda: run_drift(exp, tag, student, root, log))
    if exp.geometry:
        stage(f"geometry {tag}", lambda: run_geometry(exp, tag, student, eval_dir(root, c, s), root, log))
    if exp.curve_steps:
        stage(f"curve {tag}", lambda: run_curve(exp, c, s, root, log))


def _reproduce(exp: Experiment, root: Path, reports_dir: Path, started: float, log: Log) -> Path:
    from .eval.report import write_report

    write_yaml_atomic(root / "experiment.yaml", asdict(exp))
    write_json_atomic(root / "environment.json", {"hardware": hardware(), "versions": package_versions()})
    miracl.prepare(exp.eval_langs, "dev")
    timings: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], None]) -> None:
        t = time.time()
        fn()
        timings[name] = round(time.time() - t, 1)

    for base in exp.baselines:
        stage(f"baseline {base}", lambda b=base: run_eval(exp, b, baseline_dir(root, b), exp.eval_pool, log))
    if exp.geometry:
        stage(f"geometry {BEFORE}", lambda: run_geometry(exp, BEFORE, exp.student, baseline_dir(root, exp.student),
                                                         root, log))
    for variant in exp.variants_of(BEFORE):
        stage(f"evaluate {variant_name(BEFORE, variant)}", lambda v=variant: run_eval(
            exp, exp.student, variant_dir(root, v, BEFORE), exp.eval_pool, log, v))
    if exp.eval_pool is not None:  # BM25 on the full corpus: the reference against Pyserini
        stage("baseline bm25 full corpus", lambda: run_eval(exp, "bm25", root / "baselines" / FULL_CORPUS_BM25, None,
                                                                    log))
    for system in (*CLIR_LEXICAL, exp.student):
        name = BEFORE if system == exp.student else system
        stage(f"bible-clir {name}", lambda s=system, n=name: run_clir(exp, n, s, root, log))
    for layers in exp.probe_layer_pairs():
        stage(f"token probe before{layer_suffix(*layers)}",
              lambda ly=layers: run_token_probe(exp, BEFORE, exp.student, root, log, ly))
    conditions = exp.condition_names()
    for seed in sorted({s for c in conditions for s in exp.seeds_of(c)}):
        for condition in [c for c in conditions if seed in exp.seeds_of(c)]:
            _student_stages(exp, condition, seed, root, stage, log)
    stage("diagnostic before", lambda: run_diagnostic(exp, exp.student, diag_file(root, BEFORE), log))
    for seed in exp.diagnostic_seeds:
        for condition in [c for c in conditions if seed in exp.seeds_of(c)]:
            tag = run_tag(condition, seed)
            stage(f"diagnostic {tag}", lambda c=condition, s=seed, t=tag: run_diagnostic(
                exp, str(student_dir(root, c, s)), diag_file(root, t), log))
    stage("explain", lambda: run_explain(exp, root, log))
    previous = read_json_or_none(root / "timings.json") or {}
    write_json_atomic(root / "timings.json", {"this_run": timings, "this_run_total_s": round(time.time() - started, 1),
                                              "previous": previous.get("this_run")})
    report_dir = Path(reports_dir) / exp.name / exp.profile
    write_report(root, report_dir, exp)
    log(f"report: {report_dir / 'results.md'}")
    return report_dir
