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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import config_hash, folder_lock, hardware, package_versions, write_json_atomic, write_yaml_atomic
from .config import build, read_yaml, setting, validate
from .data import miracl
from .distill.trainer import METHODS, DistillConfig
from .errors import ClirOtError
from .eval.evaluate import EvalConfig
from .eval.evaluate import evaluate as run_evaluate
from .inputs import read_json_or_none
from .languages import EVAL_LANGUAGES, check_language
from .layout import baseline_folder, is_safe_name
from .models.loading import resolve_device

Log = Callable[[str], None]


@dataclass
class Experiment:
    """An experiment file with one profile applied; converted and range-checked when made."""

    name: str
    profile: str
    student: str = "me5-small"
    teacher: str = "self"
    methods: list[str] = setting(default_factory=lambda: ["kd", "ot", "ot+kd"], choices=METHODS)
    seeds: list[int] = setting(default_factory=lambda: [0, 1, 2], ge=0)
    baselines: list[str] = field(default_factory=lambda: ["bm25", "minilm", "me5-small"])
    eval_langs: list[str] = field(default_factory=lambda: list(EVAL_LANGUAGES))
    eval_pool: int | None = setting(None, ge=0)
    eval_queries: int | None = setting(None, ge=1)
    eval_batch_size: int = setting(32, ge=1)
    diagnostic_langs: list[str] = field(default_factory=lambda: ["sw", "te", "bn", "hi", "th"])
    diagnostic_max_passages: int | None = setting(None, ge=1)
    diagnostic_seeds: list[int] = setting(default_factory=lambda: [0], ge=0)
    explain_pairs: int = setting(1, ge=0)
    distill: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        validate(self)
        for what, value in (("name", self.name), ("profile", self.profile)):
            if not is_safe_name(value):
                raise ClirOtError(f"invalid configuration: experiment {what} {value!r} must be letters, digits, "
                                  "'.', '_', '+' or '-' (it names a folder)")
        if not self.seeds or not self.methods:
            raise ClirOtError("invalid configuration: an experiment needs at least one method and one seed")
        self.eval_langs = [check_language(lang) for lang in self.eval_langs]
        self.diagnostic_langs = [check_language(lang) for lang in self.diagnostic_langs]
        folders = [baseline_folder(b) for b in self.baselines]
        if len(set(folders)) != len(folders):
            raise ClirOtError(f"invalid configuration: baselines {self.baselines} map to the same folder")
        for method in self.methods:  # every distillation's settings, checked before the first stage runs
            for seed in self.seeds:
                self.distill_config(method, seed)

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
        if (read_json_or_none(manifest) or {}).get("config_hash") == config_hash(asdict(cfg)):
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
            log(f"  {r.lang}: R@100 {r.metrics['R@100']:.4f} nDCG@10 {r.metrics['nDCG@10']:.4f}"
                + ("  (reused: same configuration, weights, corpus and judgements)" if r.reused else ""))


def run_diagnostic(exp: Experiment, model: str, out: Path, log: Log) -> None:
    from .data.partial import LABEL, load_partial
    from .eval.dense import evaluate_collection
    from .models import load_encoder
    from .models.loading import model_fingerprint

    cfg = {"model": model, "weights": model_fingerprint(model), "langs": exp.diagnostic_langs,
           "max_passages": exp.diagnostic_max_passages}
    if (read_json_or_none(out) or {}).get("config_hash") == config_hash(cfg):
        log(f"skip diagnostic {model}: done with the same weights (sha256)")
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
    from .models.loading import model_fingerprint

    ot_student = root / "distill" / f"ot-s{exp.seeds[0]}" / "student"
    teacher = exp.teacher if exp.teacher != "self" else exp.student
    for name, model in (("before", exp.student), ("after-ot", str(ot_student))):
        out = root / "explain" / name
        if name == "after-ot" and not ot_student.is_dir():
            continue
        key = config_hash({"student": model_fingerprint(model), "teacher": model_fingerprint(teacher),
                           "reg": exp.distill_config("ot", 0).ot_reg,
                           "langs": exp.eval_langs, "pairs": exp.explain_pairs})
        stamp = out / "inputs.json"
        if (out / "alignments.json").is_file() and read_json_or_none(stamp) == {"key": key}:
            continue
        log(f"explain {name}: OT plans on UDHR pairs")
        explain_udhr(model, teacher, exp.eval_langs, out, pairs_per_lang=exp.explain_pairs,
                     reg=exp.distill_config("ot", 0).ot_reg)
        write_json_atomic(stamp, {"key": key})


def reproduce(experiment: Path, profile: str, runs_dir: Path, reports_dir: Path, log: Log) -> Path:
    """Run every stage (skipping finished ones) and write the report; return the report folder."""

    started = time.time()
    exp = load_experiment(experiment, profile)
    resolve_device(exp.distill_config(exp.methods[0], exp.seeds[0]).device)  # before any stage runs
    root = Path(runs_dir) / exp.name / profile
    with folder_lock(root, "reproduce"):
        return _reproduce(exp, root, Path(reports_dir), started, log)


def _reproduce(exp: Experiment, root: Path, reports_dir: Path, started: float, log: Log) -> Path:
    from .eval.report import write_report

    profile = exp.profile
    write_yaml_atomic(root / "experiment.yaml", asdict(exp))
    write_json_atomic(root / "environment.json", {"hardware": hardware(), "versions": package_versions()})
    miracl.prepare(exp.eval_langs, "dev")
    timings: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], None]) -> None:
        t = time.time()
        fn()
        timings[name] = round(time.time() - t, 1)

    for base in exp.baselines:
        stage(f"baseline {base}", lambda b=base: run_eval(exp, b, root / "baselines" / baseline_folder(b),
                                                          exp.eval_pool, log))
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
    previous = read_json_or_none(root / "timings.json") or {}
    write_json_atomic(root / "timings.json", {"this_run": timings, "this_run_total_s": round(time.time() - started, 1),
                                              "previous": previous.get("this_run")})
    report_dir = Path(reports_dir) / exp.name / profile
    write_report(root, report_dir, exp)
    log(f"report: {report_dir / 'results.md'}")
    return report_dir
