"""The whole zero-shot experiment from one YAML file: baselines, distillation × seeds, evaluation,
the partial-pool diagnostic, OT alignment heatmaps and the report.

    clir-ot reproduce experiments/zero_shot_miracl.yaml --profile cpu     # what `make reproduce` runs

Stages write into ``RUNS/<experiment>/<profile>/``:

    baselines/<system>/      clir-ot evaluate outputs (BM25, teacher alone, student before)
    distill/<method>-s<seed> clir-ot distill outputs
    eval/<method>-s<seed>/   clir-ot evaluate outputs of each student
    diag/<system>.json       partial-pool diagnostic (labelled: NOT MIRACL)
    explain/                 OT plans on UDHR pairs, before and after OT distillation

Re-running skips every stage whose artifact exists with the same configuration hash and resumes an
interrupted distillation from its checkpoint; a finished stage with a *different* configuration is
refused (never silently overwritten).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import config_hash, hardware, package_versions, write_json_atomic, write_yaml_atomic
from .config import build, read_yaml
from .data import miracl
from .distill.trainer import DistillConfig
from .errors import ClirOtError
from .eval.evaluate import EvalConfig
from .eval.evaluate import evaluate as run_evaluate
from .languages import EVAL_LANGUAGES

Log = Callable[[str], None]


@dataclass
class Experiment:
    name: str
    profile: str
    student: str = "me5-small"
    teacher: str = "self"
    methods: list[str] = field(default_factory=lambda: ["kd", "ot", "ot+kd"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    baselines: list[str] = field(default_factory=lambda: ["bm25", "minilm", "me5-small"])
    eval_langs: list[str] = field(default_factory=lambda: list(EVAL_LANGUAGES))
    eval_pool: int | None = None
    eval_queries: int | None = None
    eval_batch_size: int = 32
    diagnostic_langs: list[str] = field(default_factory=lambda: ["sw", "te", "bn", "hi", "th"])
    diagnostic_max_passages: int | None = None
    diagnostic_seeds: list[int] = field(default_factory=lambda: [0])
    explain_pairs: int = 1
    distill: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def distill_config(self, method: str, seed: int) -> DistillConfig:
        return build(DistillConfig, self.distill, {"method": method, "seed": seed, "student": self.student,
                                                   "teacher": self.teacher})

    def eval_config(self, model: str, pool: int | None) -> EvalConfig:
        return EvalConfig(langs=self.eval_langs, model=model, pool_distractors=pool,
                          batch_size=self.eval_batch_size, query_sample=self.eval_queries)


def load_experiment(path: Path, profile: str) -> Experiment:
    """Read an experiment YAML and apply the named profile (its keys override the top level;
    ``distill`` mappings are merged)."""
    raw = read_yaml(path)
    profiles = raw.pop("profiles", {}) or {}
    if profile not in profiles:
        raise ClirOtError(f"{path} has no profile {profile!r}; profiles: {', '.join(profiles) or 'none'}")
    chosen = dict(profiles[profile] or {})
    distill = {**(raw.pop("distill", {}) or {}), **(chosen.pop("distill", {}) or {})}
    return build(Experiment, {"name": Path(path).stem}, raw, chosen, {"profile": profile, "distill": distill})


def run_distill(exp: Experiment, method: str, seed: int, root: Path, log: Log) -> Path:
    from .distill.trainer import train

    cfg = exp.distill_config(method, seed)
    out = root / "distill" / f"{method}-s{seed}"
    manifest = out / "manifest.json"
    if manifest.is_file():
        if json.loads(manifest.read_text())["config_hash"] == config_hash(asdict(cfg)):
            log(f"skip distill {method} seed {seed}: done")
            return out
        raise ClirOtError(f"{out} was trained with another configuration; move it away or use another --runs-dir")
    resume = (out / "checkpoint" / "trainer.pt").is_file()
    if out.exists() and not resume:
        log(f"restart distill {method} seed {seed}: interrupted before its first checkpoint")
    log(f"{'resume' if resume else 'run'} distill {method} seed {seed} ({cfg.steps} steps)")
    train(cfg, out, resume=resume, overwrite=not resume)
    return out


def run_eval(exp: Experiment, model: str, out: Path, pool: int | None, log: Log) -> None:
    log(f"evaluate {model} → {out}")
    results = run_evaluate(exp.eval_config(model, pool), out)
    for r in results:
        if r.status == "ok":
            log(f"  {r.lang}: R@100 {r.metrics['R@100']:.4f} nDCG@10 {r.metrics['nDCG@10']:.4f}")


def run_diagnostic(exp: Experiment, model: str, out: Path, log: Log) -> None:
    from .data.partial import LABEL, load_partial
    from .eval.dense import evaluate_collection
    from .models import load_encoder

    cfg = {"model": model, "langs": exp.diagnostic_langs, "max_passages": exp.diagnostic_max_passages}
    if out.is_file() and json.loads(out.read_text()).get("config_hash") == config_hash(cfg):
        log(f"skip diagnostic {model}: done")
        return
    log(f"partial-pool diagnostic {model}")
    encoder = load_encoder(model)
    results = {}
    for lang in exp.diagnostic_langs:
        docs, queries, qrels = load_partial(lang, exp.diagnostic_max_passages)
        results[lang] = evaluate_collection(encoder, docs, queries, qrels, depth=100, batch_size=exp.eval_batch_size)
    write_json_atomic(out, {"config_hash": config_hash(cfg), "config": cfg, "label": LABEL, "results": results})


def run_explain(exp: Experiment, root: Path, log: Log) -> None:
    from .distill.explain import explain_udhr

    ot_student = root / "distill" / f"ot-s{exp.seeds[0]}" / "student"
    for name, model in (("before", exp.student), ("after-ot", str(ot_student))):
        out = root / "explain" / name
        if (out / "alignments.json").is_file():
            continue
        if name == "after-ot" and not ot_student.is_dir():
            continue
        log(f"explain {name}: OT plans on UDHR pairs")
        explain_udhr(model, exp.teacher if exp.teacher != "self" else exp.student, exp.eval_langs, out,
                     pairs_per_lang=exp.explain_pairs, reg=exp.distill_config("ot", 0).ot_reg)


def reproduce(experiment: Path, profile: str, runs_dir: Path, reports_dir: Path, log: Log) -> Path:
    """Run every stage (skipping finished ones) and write the report; return the report folder."""
    from .eval.report import write_report

    started = time.time()
    exp = load_experiment(experiment, profile)
    root = Path(runs_dir) / exp.name / profile
    root.mkdir(parents=True, exist_ok=True)
    write_yaml_atomic(root / "experiment.yaml", asdict(exp))
    write_json_atomic(root / "environment.json", {"hardware": hardware(), "versions": package_versions()})
    miracl.prepare(exp.eval_langs, "dev")
    timings: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], None]) -> None:
        t = time.time()
        fn()
        timings[name] = round(time.time() - t, 1)

    for base in exp.baselines:
        stage(f"baseline {base}", lambda b=base: run_eval(exp, b, root / "baselines" / b, exp.eval_pool, log))
    if exp.eval_pool is not None:  # BM25 on the full corpus: the reference against Pyserini
        stage("baseline bm25 full corpus", lambda: run_eval(exp, "bm25", root / "baselines" / "bm25-full", None, log))
    for seed in exp.seeds:
        for method in exp.methods:
            tag = f"{method}-s{seed}"
            stage(f"distill {tag}", lambda m=method, s=seed: run_distill(exp, m, s, root, log))
            student = str(root / "distill" / tag / "student")
            stage(f"evaluate {tag}", lambda st=student, t=tag: run_eval(exp, st, root / "eval" / t, exp.eval_pool, log))
    stage("diagnostic before", lambda: run_diagnostic(exp, exp.student, root / "diag" / "before.json", log))
    for seed in exp.diagnostic_seeds:
        for method in exp.methods:
            tag = f"{method}-s{seed}"
            stage(f"diagnostic {tag}", lambda t=tag: run_diagnostic(
                exp, str(root / "distill" / t / "student"), root / "diag" / f"{t}.json", log))
    stage("explain", lambda: run_explain(exp, root, log))
    previous = json.loads((root / "timings.json").read_text()) if (root / "timings.json").is_file() else {}
    write_json_atomic(root / "timings.json", {"this_run": timings, "this_run_total_s": round(time.time() - started, 1),
                                              "previous": previous.get("this_run")})
    report_dir = Path(reports_dir) / exp.name / profile
    write_report(root, report_dir, exp)
    log(f"report: {report_dir / 'results.md'}")
    return report_dir
