"""An experiment file: baselines, named conditions (a method plus DistillConfig overrides, grids that
expand into conditions), the comparisons to test, curve steps, profiles and expected smoke scores.

    conditions:
      kd: {method: kd}
      ot: {method: ot}
      noise: {method: noise}                       # the control: retention only, no cross-lingual signal
      ot-grid: {method: ot, seeds: [0], sweep: {ot_reg: [0.05, 0.2], student_layer: [-1, 6]}}
    compare: [[ot, kd], [ot, noise], [kd, before]]   # exploratory: tested and labelled so
    hypotheses:                                    # confirmatory: fixed before the first distillation
      - {a: ot, b: kd, lang: yo, measure: nDCG@10, direction: greater}
    curve_steps: [50]                              # evaluate each student at these steps too (0 and the end always)
    profiles:
      smoke: {seeds: [0, 1], distill: {steps: 3}, expected: {yo: {kd: {nDCG@10: 0.8551}}}}

A condition with ``sweep`` is replaced by one condition per grid point, named
``<name>-<field><value>-...`` (``ot-grid-ot_reg0.05-student_layer6``). ``seeds`` in a condition
replaces the experiment's seeds for it (e.g. one seed for each point of a grid). ``before`` names the student
before distillation. An experiment without ``conditions`` takes one per entry of ``methods``.
``extends: other.yaml`` starts from another experiment file and overrides what this one says
(mappings merged key by key, except ``conditions`` and ``expected``, which a variant replaces whole;
lists and values replaced): variants are a few lines, not a copy.
Unknown keys, duplicate or colliding names, and comparisons of unknown conditions are refused.

``hypotheses`` are the pre-registered, confirmatory family: each names two conditions ``a`` and ``b`` (or
``before``), a benchmark (``miracl``, the default, or ``bible-clir`` with its ``query_encoder``), a language,
a measure and optionally a ``direction`` (``greater``: a > b; ``less``: a < b; none: two-sided).
``reproduce`` registers them in the run folder's ``manifest.json`` (their sha256 and the commit) before the
first stage and refuses a run folder whose registered family differs; the report tests exactly them
(Holm over the family alone; one-sided where a direction is declared) and labels every ``compare``
entry exploratory.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import build, read_yaml, setting, validate
from .data.benchmarks import get_benchmark
from .distill.config import DistillConfig
from .distill.methods import METHODS
from .errors import ClirOtError
from .eval.evaluate import EvalConfig
from .eval.variants import VARIANTS, eval_settings, variant_name
from .languages import EVAL_LANGUAGES, check_language
from .layout import BEFORE, CLIR_LEXICAL, FULL_CORPUS_BM25, baseline_folder, baseline_label, is_safe_name
from .models.precision import PRECISIONS

#: Comparisons tested when an experiment declares none (those whose conditions exist).
DEFAULT_COMPARISONS = (("ot", "kd"), ("ot", "noise"), ("kd", "noise"), ("ot", BEFORE), ("kd", BEFORE),
                       ("ot+kd", BEFORE), ("noise", BEFORE))
_DISTILL_FIELDS = {f.name for f in fields(DistillConfig)}
CLIR_QUERY_ENCODERS = ("student", "teacher")


@dataclass
class Experiment:
    """An experiment file with one profile applied; converted and range-checked when made."""

    name: str
    profile: str
    student: str = "me5-small"
    teacher: str = "self"
    methods: list[str] = setting(default_factory=lambda: ["kd", "ot", "ot+kd"], choices=METHODS)
    conditions: dict[str, Any] | None = None
    compare: list[list[str]] | None = None
    #: the pre-registered confirmatory family (see the module docstring), normalised by :func:`normalise_hypotheses`
    hypotheses: list[dict[str, Any]] | None = None
    curve_steps: list[int] = setting(default_factory=list, ge=1)
    seeds: list[int] = setting(default_factory=lambda: [0, 1, 2], ge=0)
    baselines: list[str] = field(default_factory=lambda: ["bm25", "minilm", "me5-small"])
    eval_langs: list[str] = field(default_factory=lambda: list(EVAL_LANGUAGES))
    eval_pool: int | None = setting(None, ge=0)
    #: a reduced pool (judged + N random passages) for the trade-off curves: their declared steps, step 0 and the
    #: last step are all evaluated on it, so that curves stay cheap where the students are evaluated on the full
    #: corpus; unset: the curves use ``eval_pool`` (and reuse the students' evaluations as their ends)
    curve_pool: int | None = setting(None, ge=0)
    eval_queries: int | None = setting(None, ge=1)
    eval_batch_size: int = setting(32, ge=1)
    #: inference precision of every evaluation; fp32 by default so that a profile's scores are the same on
    #: every machine (``auto`` picks bf16 where the hardware has it: faster, machine-dependent). Not int8: its
    #: fidelity gate is per model weights (:mod:`clir_ot.eval.fidelity`), and the students do not exist yet
    eval_precision: str = setting("fp32", choices=tuple(p for p in PRECISIONS if p != "int8"))
    diagnostic_langs: list[str] = field(default_factory=lambda: ["sw", "te", "bn", "hi", "th"])
    diagnostic_max_passages: int | None = setting(None, ge=1)
    diagnostic_seeds: list[int] = setting(default_factory=lambda: [0], ge=0)
    explain_pairs: int = setting(1, ge=0)
    #: bible-clir (the positive control; none when no languages): languages, query encoders ("student": the
    #: model searched; "teacher": the frozen English teacher, OPTICAL's shape), a query sample / reduced pool
    clir_langs: list[str] = field(default_factory=list)
    clir_query_encoders: list[str] = setting(default_factory=lambda: ["student", "teacher"],
                                             choices=CLIR_QUERY_ENCODERS)
    clir_queries: int | None = setting(None, ge=1)
    clir_pool: int | None = setting(None, ge=0)
    #: token-alignment probe: held-out verse pairs per bible-clir language with a probe lexicon (0: none)
    token_probe_pairs: int = setting(0, ge=0)
    #: measure each student's drift from the student before on yo passages and held-out English verses
    drift: bool = False
    #: geometry readouts (:mod:`clir_ot.eval.geometry`) of the student before and of every student
    geometry: bool = False
    #: pairs of systems ``[a, b]`` whose per-query difference the report breaks down
    #: (:mod:`clir_ot.eval.report_per_query`)
    per_query: list[list[str]] = field(default_factory=list)
    #: evaluate the student before and every student again as each of these variants (training-free controls,
    #: swapped sides: :data:`clir_ot.eval.variants.VARIANTS`), reported as systems ``<system>+<variant>``
    eval_variants: list[str] = setting(default_factory=list, choices=tuple(VARIANTS))
    distill: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        validate(self)
        for what, value in (("name", self.name), ("profile", self.profile)):
            if not is_safe_name(value):
                raise ClirOtError(f"invalid configuration: experiment {what} {value!r} must be letters, digits, "
                                  "'.', '_', '+' or '-' (it names a folder)")
        if not self.seeds:
            raise ClirOtError("invalid configuration: an experiment needs at least one seed")
        refuse_repeats("seeds", self.seeds)
        refuse_repeats("diagnostic_seeds", self.diagnostic_seeds)
        self.eval_langs = [check_language(lang) for lang in self.eval_langs]
        self.diagnostic_langs = [check_language(lang) for lang in self.diagnostic_langs]
        clir = get_benchmark("bible-clir")
        self.clir_langs = [clir.check(lang, clir.default_split) for lang in self.clir_langs]
        folders = [baseline_folder(b) for b in self.baselines]
        if len(set(folders)) != len(folders):
            raise ClirOtError(f"invalid configuration: baselines {self.baselines} map to the same folder")
        specs = self.condition_specs()
        if not specs:
            raise ClirOtError("invalid configuration: an experiment needs at least one condition")
        self.comparisons()
        known = set(self.system_names())
        for pair in self.per_query:
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= known:
                raise ClirOtError(f"invalid configuration: per_query entry {pair} must name two different systems; "
                                  f"known: {', '.join(sorted(known))}")
        self.hypotheses = normalise_hypotheses(self) if self.hypotheses is not None else None
        refuse_repeats("curve_steps", self.curve_steps)
        if self.expected is not None:
            check_expected_scores(self)
        if self.curve_pool is not None and not self.curve_steps:
            raise ClirOtError("invalid configuration: curve_pool is set but there are no curve_steps")
        for name in specs:  # every distillation's settings, checked before the first stage runs
            for seed in self.seeds_of(name):
                try:
                    cfg = self.distill_config(name, seed)
                except ClirOtError as exc:
                    raise ClirOtError(f"condition {name!r} (seed {seed}): {exc}") from None
                if any(step >= cfg.steps for step in self.curve_steps):
                    raise ClirOtError(f"invalid configuration: curve_steps {self.curve_steps} must lie below the "
                                      f"{cfg.steps} training steps of {name!r} (step 0 and the end are always "
                                      "measured)")

    def condition_specs(self) -> dict[str, dict[str, Any]]:
        """``{condition name: DistillConfig overrides (method included)}``, grids expanded, in file order."""
        raw = self.conditions if self.conditions is not None else {m: {"method": m} for m in self.methods}
        return expand_conditions(raw)

    def condition_names(self) -> list[str]:
        return list(self.condition_specs())

    def seeds_of(self, condition: str) -> list[int]:
        """The seeds a condition runs with: its own ``seeds`` where it declares them, else the experiment's."""
        return list(self.condition_specs()[condition].get("seeds") or self.seeds)

    def distill_config(self, condition: str, seed: int) -> DistillConfig:
        """The condition's DistillConfig for ``seed``, saving snapshots at the experiment's curve steps."""
        specs = self.condition_specs()
        if condition not in specs:
            raise ClirOtError(f"unknown condition {condition!r}; conditions: {', '.join(specs)}")
        overrides = {k: v for k, v in specs[condition].items() if k != "seeds"}
        return build(DistillConfig, self.distill, overrides,
                     {"seed": seed, "student": self.student, "teacher": self.teacher,
                      "snapshot_steps": self.curve_steps})

    def aligned_layers(self, condition: str) -> tuple[int, int]:
        """``(teacher_layer, student_layer)`` a condition trains at (its first seed's configuration)."""
        cfg = self.distill_config(condition, self.seeds_of(condition)[0])
        return cfg.teacher_layer, cfg.student_layer

    def probe_layer_pairs(self) -> list[tuple[int, int]]:
        """Every layer pair some condition aligns, the last layers first: the student before is probed at each."""
        return list(dict.fromkeys([(-1, -1), *(self.aligned_layers(c) for c in self.condition_names())]))

    def comparisons(self) -> list[tuple[str, str]]:
        """The declared comparisons ``(a, b)``; by default those of :data:`DEFAULT_COMPARISONS` that exist."""
        names = set(self.system_names())
        if self.compare is None:
            return [(a, b) for a, b in DEFAULT_COMPARISONS if a in names and b in names]
        out = []
        for pair in self.compare:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ClirOtError(f"invalid configuration: compare entry {pair} must name two different conditions")
            unknown = [c for c in pair if c not in names]
            if unknown:
                raise ClirOtError(f"invalid configuration: compare names unknown condition(s) {', '.join(unknown)}; "
                                  f"conditions: {', '.join(sorted(names))}")
            if tuple(pair) in out:
                raise ClirOtError(f"invalid configuration: compare lists {pair} twice")
            out.append((pair[0], pair[1]))
        return out

    @property
    def separate_curve_pool(self) -> bool:
        """Whether the curves are evaluated on their own pool, apart from the students' evaluations."""
        return self.curve_pool is not None and self.curve_pool != self.eval_pool

    @property
    def curve_eval_pool(self) -> int | None:
        """The pool the trade-off curves are evaluated on."""
        return self.curve_pool if self.separate_curve_pool else self.eval_pool

    def eval_config(self, model: str, pool: int | None, variant: str | None = None) -> EvalConfig:
        """The evaluation of ``model`` (or of its ``variant``: :mod:`clir_ot.eval.variants`) on ``pool``."""
        settings = eval_settings(variant, model, self.student) if variant else {"model": model}
        return EvalConfig(langs=self.eval_langs, pool_distractors=pool, precision=self.eval_precision,
                          batch_size=self.eval_batch_size, query_sample=self.eval_queries, **settings)

    def variants_of(self, system: str) -> list[str]:
        """The declared variants of ``system`` (a condition, or ``before``)."""
        return [v for v in self.eval_variants if system != BEFORE or VARIANTS[v].applies_to_before()]

    def system_names(self) -> list[str]:
        """Every system a comparison or hypothesis may name: ``before``, the conditions and their variants."""
        systems = [BEFORE, *self.condition_names()]
        return systems + [variant_name(s, v) for s in systems for v in self.variants_of(s)]

    def seeds_of_system(self, system: str) -> list[int]:
        """The seeds of a condition or of a condition's variant (none for ``before`` and its variants)."""
        if system in self.condition_names():
            return self.seeds_of(system)
        base, _, variant = system.rpartition("+")
        return self.seeds_of(base) if variant in VARIANTS and base in self.condition_names() else []

    @property
    def teacher_model(self) -> str:
        """The frozen English encoder: the student's initial copy for ``teacher: self``."""
        return self.student if self.teacher == "self" else self.teacher

    def clir_config(self, model: str, query_encoder: str = "student") -> EvalConfig:
        """bible-clir for ``model`` (a dense model or a BM25 variant) with queries encoded by ``query_encoder``
        (the document embeddings come from the embedding cache: encoded once for both query encoders)."""
        return EvalConfig(langs=self.clir_langs, benchmark="bible-clir", model=model,
                          query_model=self.teacher_model if query_encoder == "teacher" else None,
                          pool_distractors=self.clir_pool, query_sample=self.clir_queries,
                          batch_size=self.eval_batch_size, precision=self.eval_precision)


HYPOTHESIS_KEYS = ("a", "b", "benchmark", "lang", "measure", "direction", "query_encoder")
DIRECTIONS = ("greater", "less")


def normalise_hypotheses(exp: Experiment) -> list[dict[str, Any]]:
    """``exp.hypotheses`` checked (conditions, benchmark, language, measure, direction; no duplicates) and with
    every key filled in (``benchmark`` miracl, ``direction`` null, ``query_encoder`` student for bible-clir and
    null for MIRACL), so that one family always hashes the same."""
    if not isinstance(exp.hypotheses, list) or not exp.hypotheses:
        raise ClirOtError("invalid configuration: hypotheses must be a non-empty list of mappings")
    names = set(exp.system_names())
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(exp.hypotheses):
        where = f"hypotheses[{i}]"
        if not isinstance(raw, dict):
            raise ClirOtError(f"invalid configuration: {where} must be a mapping with a, b, lang and measure")
        unknown = sorted(set(raw) - set(HYPOTHESIS_KEYS))
        missing = [k for k in ("a", "b", "lang", "measure") if raw.get(k) in (None, "")]
        if unknown or missing:
            raise ClirOtError(f"invalid configuration: {where} "
                              + (f"has unknown key(s) {', '.join(unknown)}" if unknown else
                                 f"lacks {', '.join(missing)}") + f"; keys: {', '.join(HYPOTHESIS_KEYS)}")
        h = {k: raw.get(k) for k in HYPOTHESIS_KEYS}
        h["a"], h["b"], h["lang"], h["measure"] = (str(h[k]) for k in ("a", "b", "lang", "measure"))
        h["benchmark"] = str(h["benchmark"] or "miracl")
        bad = [c for c in (h["a"], h["b"]) if c not in names]
        if bad or h["a"] == h["b"]:
            raise ClirOtError(f"invalid configuration: {where} must name two different conditions; "
                              + (f"unknown: {', '.join(bad)}; " if bad else "")
                              + f"conditions: {', '.join(sorted(names))}")
        if h["benchmark"] not in ("miracl", "bible-clir"):
            raise ClirOtError(f"invalid configuration: {where} benchmark must be miracl or bible-clir, "
                              f"got {h['benchmark']!r}")
        bench = get_benchmark(h["benchmark"])
        langs = exp.eval_langs if h["benchmark"] == "miracl" else exp.clir_langs
        if h["lang"] not in langs:
            raise ClirOtError(f"invalid configuration: {where} language {h['lang']!r} is not evaluated on "
                              f"{h['benchmark']} by this profile ({', '.join(langs) or 'none'})")
        if h["measure"] not in bench.measures:
            raise ClirOtError(f"invalid configuration: {where} measure {h['measure']!r} is not one of "
                              f"{h['benchmark']}'s: {', '.join(bench.measures)}")
        if h["direction"] is not None and h["direction"] not in DIRECTIONS:
            raise ClirOtError(f"invalid configuration: {where} direction must be greater, less or absent, "
                              f"got {h['direction']!r}")
        if h["benchmark"] == "miracl":
            if h["query_encoder"] is not None:
                raise ClirOtError(f"invalid configuration: {where} query_encoder applies to bible-clir only")
        else:
            h["query_encoder"] = str(h["query_encoder"] or "student")
            if h["query_encoder"] not in exp.clir_query_encoders:
                raise ClirOtError(f"invalid configuration: {where} query_encoder must be one of "
                                  f"{', '.join(exp.clir_query_encoders)}")
        if h in out:
            raise ClirOtError(f"invalid configuration: {where} repeats an earlier hypothesis")
        out.append(h)
    return out


def check_expected_scores(exp: Experiment) -> None:
    """``expected`` is ``{lang: {system: {measure: number}}}`` for MIRACL and ``{"bible-clir": {query encoder:
    {lang: {system: {measure: number}}}}}``, naming evaluated languages, known systems and the benchmark's
    measures: a typo is refused before the first stage, not after the whole run."""
    systems = set(exp.system_names()) | set(CLIR_LEXICAL)
    systems |= {baseline_label(b, exp.student) for b in (*exp.baselines, FULL_CORPUS_BM25)}

    def check(where: str, langs: list[str], bench: str, tree: Any) -> None:
        if not isinstance(tree, dict):
            raise ClirOtError(f"invalid configuration: {where} must map languages to systems, got {tree!r}")
        measures = get_benchmark(bench).measures
        for lang, by_system in tree.items():
            if lang not in langs:
                raise ClirOtError(f"invalid configuration: {where} names language {lang!r}, which this profile does "
                                  f"not evaluate on {bench} ({', '.join(langs) or 'none'})")
            if not isinstance(by_system, dict):
                raise ClirOtError(f"invalid configuration: {where} {lang} must map systems to measures")
            for system, scores in by_system.items():
                if system not in systems:
                    raise ClirOtError(f"invalid configuration: {where} {lang} names unknown condition {system!r}; "
                                      f"known: {', '.join(sorted(systems))}")
                if not isinstance(scores, dict):
                    raise ClirOtError(f"invalid configuration: {where} {lang} {system} must map measures to "
                                      f"numbers, got {scores!r}")
                for measure, value in scores.items():
                    if measure not in measures:
                        raise ClirOtError(f"invalid configuration: {where} {lang} {system} names measure "
                                          f"{measure!r}; {bench}'s: {', '.join(measures)}")
                    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                        raise ClirOtError(f"invalid configuration: {where} {lang} {system} {measure} must be a "
                                          f"number, got {value!r}")

    if not isinstance(exp.expected, dict):
        raise ClirOtError(f"invalid configuration: expected must be a mapping, got {exp.expected!r}")
    check("expected", exp.eval_langs, "miracl", {k: v for k, v in exp.expected.items() if k != "bible-clir"})
    clir = exp.expected.get("bible-clir")
    if clir is not None:
        if not isinstance(clir, dict) or not set(clir) <= set(exp.clir_query_encoders):
            raise ClirOtError("invalid configuration: expected bible-clir must map query encoders "
                              f"({', '.join(exp.clir_query_encoders)}) to languages")
        for encoder, tree in clir.items():
            check(f"expected bible-clir {encoder}", exp.clir_langs, "bible-clir", tree)


def _format_value(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in text)


def refuse_repeats(what: str, values: list) -> None:
    """One line for a list that names a value twice (``seeds: [0, 0]`` would run once and report two seeds)."""
    repeated = sorted({x for i, x in enumerate(values) if x in values[:i]})
    if repeated:
        raise ClirOtError(f"invalid configuration: {what} lists {', '.join(map(str, repeated))} twice")


#: settings of a condition that set several DistillConfig fields from one value: ``layer: 6`` reads (and aligns)
#: both encoders at layer 6, in a condition or a sweep (``sweep: {layer: [2, 4, 6]}``: conditions ``-layer2`` …)
PAIRED_SETTINGS = {"layer": ("teacher_layer", "student_layer")}


def _unpair(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with each paired setting (:data:`PAIRED_SETTINGS`) replaced by the fields it sets."""
    out = dict(spec)
    for key, targets in PAIRED_SETTINGS.items():
        if key in out:
            clash = [t for t in targets if t in out]
            if clash:
                raise ClirOtError(f"invalid configuration: condition {name!r} sets {key} and {', '.join(clash)}; "
                                  f"{key} sets {' and '.join(targets)} itself")
            value = out.pop(key)
            out |= dict.fromkeys(targets, value)
    return out


def expand_conditions(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Named conditions from their YAML form; a ``sweep`` grid becomes one condition per point; a paired setting
    (:data:`PAIRED_SETTINGS`) sets each of its fields."""
    if not isinstance(raw, dict) or not raw:
        raise ClirOtError("invalid configuration: conditions must be a non-empty mapping of names to settings")
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, spec: dict[str, Any], origin: str) -> None:
        if not is_safe_name(name) or name == BEFORE:
            raise ClirOtError(f"invalid configuration: condition name {name!r} must be letters, digits, '.', '_', "
                              f"'+' or '-' and not {BEFORE!r}")
        if name in out:
            raise ClirOtError(f"invalid configuration: condition {name!r} ({origin}) collides with another "
                              "condition of the same name")
        out[name] = _unpair(name, spec)

    for name, spec in raw.items():
        if spec is not None and not isinstance(spec, dict):
            raise ClirOtError(f"invalid configuration: condition {name!r} must be a mapping of settings, got {spec!r}")
        spec = dict(spec or {})
        unknown = sorted(set(spec) - _DISTILL_FIELDS - set(PAIRED_SETTINGS) - {"sweep", "seeds"})
        if unknown:
            raise ClirOtError(f"invalid configuration: condition {name!r} has unknown key(s) {', '.join(unknown)}; "
                              "use DistillConfig fields (method, ot_reg, ...), sweep or seeds")
        seeds = spec.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds
                                  or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
            raise ClirOtError(f"invalid configuration: seeds of {name!r} must be a list of integers ≥ 0")
        refuse_repeats(f"seeds of {name!r}", seeds or [])
        if "method" not in spec and "objective" not in spec:
            raise ClirOtError(f"invalid configuration: condition {name!r} needs a method (or an objective)")
        sweep = spec.pop("sweep", None)
        if sweep is None:
            add(str(name), spec, "declared")
            continue
        if not isinstance(sweep, dict) or not sweep:
            raise ClirOtError(f"invalid configuration: sweep of {name!r} must map fields to lists of values")
        for key, values in sweep.items():
            if (key not in _DISTILL_FIELDS and key not in PAIRED_SETTINGS) or key in ("method", "seed"):
                raise ClirOtError(f"invalid configuration: sweep of {name!r} over unknown field {key!r}")
            if not isinstance(values, list) or not values or len(set(map(repr, values))) != len(values):
                raise ClirOtError(f"invalid configuration: sweep of {name!r} over {key!r} needs a list of distinct "
                                  "values")
            if any(a == b for i, a in enumerate(values) for b in values[:i]):
                raise ClirOtError(f"invalid configuration: sweep of {name!r} over {key!r} lists the same value twice "
                                  f"({values}): it would train and report one setting twice")
        keys = list(sweep)
        for point in itertools.product(*(sweep[k] for k in keys)):
            label = "-".join(f"{k}{_format_value(v)}" for k, v in zip(keys, point, strict=True))
            add(f"{name}-{label}", spec | dict(zip(keys, point, strict=True)), f"grid point of {name!r}")
    return out


#: Keys whose mapping a variant replaces whole (a variant's conditions are its own, not added to the base's).
_REPLACED = ("conditions", "expected")


def _merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: mappings merged key by key (except :data:`_REPLACED`), anything else replaced."""
    out = dict(base)
    for key, value in top.items():
        merge = isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _REPLACED
        out[key] = _merge(out[key], value) if merge else value
    return out


def read_experiment_file(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML of ``path`` with its ``extends:`` chain resolved (relative to the file that says it)."""
    path = Path(path)
    raw = read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ClirOtError(f"{path}: extends must be one path (a string), got {parent!r}")
    base_path = (path.parent / str(parent)).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ClirOtError(f"{path}: extends {parent} makes a cycle")
    base = read_experiment_file(base_path, (*_seen, path.resolve()))
    base.pop("name", None)  # the name comes from the file that is run
    return _merge(base, raw)


def load_experiment(path: Path, profile: str) -> Experiment:
    """Read an experiment YAML (its ``extends`` chain first) and apply the named profile: the profile's keys
    override the top level, ``distill`` mappings are merged."""
    raw = read_experiment_file(path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ClirOtError(f"{path}: profiles must be a mapping of profile names to settings, got {profiles!r}")
    if profile not in profiles:
        raise ClirOtError(f"{path} has no profile {profile!r}; profiles: {', '.join(profiles) or 'none'}")
    if profiles[profile] is not None and not isinstance(profiles[profile], dict):
        raise ClirOtError(f"{path}: profile {profile!r} must be a mapping of settings, got {profiles[profile]!r}")
    chosen = dict(profiles[profile] or {})
    top, own = raw.pop("distill", {}) or {}, chosen.pop("distill", {}) or {}
    for where, block in (("distill", top), (f"profile {profile!r} distill", own)):
        if not isinstance(block, dict):
            raise ClirOtError(f"{path}: {where} must be a mapping of distillation settings, got {block!r}")
    distill = {**top, **own}
    return build(Experiment, {"name": Path(path).stem}, raw, chosen, {"profile": profile, "distill": distill})
