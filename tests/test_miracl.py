"""MIRACL data layer: offline cache filling, real ir_datasets loading, clear errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from clir_ot.data import miracl
from clir_ot.errors import ClirOtError, DataUnavailableError
from clir_ot.resources import embedded_miracl_mirror

pytestmark = pytest.mark.integration


def test_prepare_fills_cache_and_ir_datasets_reads_yo_offline(isolated_env: Path) -> None:
    import ir_datasets

    report = miracl.prepare(["yo"], "dev")
    assert "yo/dev corpus: docs-1.jsonl.gz" in report.copied  # the ir_datasets yo quirk
    assert (isolated_env / "miracl/v1.0/yo/docs/docs-1.jsonl.gz").is_file()
    ds = ir_datasets.load("miracl/yo/dev")
    assert sum(1 for _ in ds.queries_iter()) == 119
    qrels = list(ds.qrels_iter())
    assert len(qrels) == 1188
    assert sum(q.relevance > 0 for q in qrels) == 144
    n_docs, first = 0, None
    for doc in ds.docs_iter():
        first = first or doc
        n_docs += 1
    assert n_docs == 49043
    assert first.doc_id == "598#0" and first.default_text().startswith("A aa ab")
    # a second prepare copies nothing and keeps what is there
    again = miracl.prepare(["yo"], "dev")
    assert not again.copied and len(again.present) == 3


def test_loaders_return_strings_and_title_text() -> None:
    queries = miracl.load_queries("yo")
    assert queries[0] == miracl.Query("10020#0", "Odun wo ni wọn ṣe idije Olympiiki akọkọ?")
    qrels = miracl.load_qrels("yo")
    assert miracl.Qrel("10020#0", "10020#1", 1) in qrels
    doc = next(miracl.iter_docs("yo"))
    assert doc == miracl.Doc("598#0", "A aa ab ac ad ae af ag ah ai aj ak al am an ao ap aq ar as at au av aw ax ay az")


def test_missing_corpus_offline_is_a_clear_actionable_error() -> None:
    assert len(miracl.load_queries("sw")) == 482  # topics are embedded
    with pytest.raises(DataUnavailableError) as info:
        next(miracl.iter_docs("sw"))
    message = str(info.value)
    assert "'sw'" in message and "clir-ot data prepare --from DIR --lang sw" in message
    assert "ir_datasets" in message


@pytest.mark.parametrize("lang", ["xx", "Klingon", "", "yo-yo"])
def test_unknown_language_code_is_refused(lang: str) -> None:
    with pytest.raises(ClirOtError, match="unknown language code"):
        miracl.load_queries(lang)


def test_missing_split_is_refused() -> None:
    with pytest.raises(ClirOtError, match="no 'train' split for 'yo'"):
        miracl.load_queries("yo", "train")


def test_prepare_refuses_files_that_are_not_the_official_ones(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(embedded_miracl_mirror(), mirror)
    topics = mirror / "topics-qrels" / "topics.miracl-v1.0-sw-dev.tsv"
    topics.write_text(topics.read_text(encoding="utf-8") + "999\textra query\n", encoding="utf-8")
    with pytest.raises(ClirOtError, match="does not match the official MIRACL file"):
        miracl.prepare(["sw"], "dev", mirror)
    assert not miracl.cache_files("sw", "dev")["topics"][0][0].exists()


def test_multi_shard_mirror_layout_and_status(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "topics-qrels").mkdir(parents=True)
    for i, n in enumerate((3, 2)):
        with gzip.open(mirror / f"miracl-corpus-v1.0-te-{i}.docs.jsonl.gz", "wt", encoding="utf-8") as f:
            for j in range(n):
                f.write(json.dumps({"docid": f"{i}#{j}", "title": "T", "text": f"passage {i} {j}"}) + "\n")
    rows = {s.lang: s for s in miracl.status(["te", "yo", "de"], "dev", mirror)}
    assert rows["te"].counts == {"topics": 828, "qrels": 1606, "corpus": 5}
    assert rows["te"].sources["corpus"] == "mirror"
    assert rows["yo"].counts["corpus"] == 49043 and rows["yo"].sources["corpus"] == "embedded"
    assert rows["de"].counts["corpus"] is None
    report = miracl.prepare(["te"], "dev", mirror)
    assert any("docs-1.jsonl.gz" in c for c in report.copied)
    docs = list(miracl.iter_docs("te"))
    assert [d.doc_id for d in docs] == ["0#0", "0#1", "0#2", "1#0", "1#1"]
    assert docs[0].text == "T passage 0 0"


def _cached(isolated_env: Path, name: str) -> Path:
    miracl.prepare(["yo"], "dev")
    return isolated_env / "miracl/v1.0/yo" / name


def test_a_partial_cached_corpus_is_refused_not_scored(isolated_env: Path) -> None:
    """A valid gzip with 25,000 of the 49,043 yo passages once gave R@100 labelled 'full corpus'."""
    from clir_ot.eval.evaluate import EvalConfig, evaluate

    path = _cached(isolated_env, "docs/docs-1.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        head = [next(f) for _ in range(25000)]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(head)
    with pytest.raises(DataUnavailableError, match="has 25,000 passages; ir_datasets expects 49,043"):
        miracl.load_corpus("yo")
    [result] = evaluate(EvalConfig(langs=["yo"], model="bm25"), isolated_env / "out")
    assert result.status == "unavailable" and "25,000 passages" in result.reason and not result.metrics


def test_cut_topics_are_refused(isolated_env: Path) -> None:
    """Topics cut to 60 of 119 once gave metrics over 60 queries."""
    path = _cached(isolated_env, "dev/topics.tsv")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:60]), encoding="utf-8")
    with pytest.raises(DataUnavailableError, match=r"not the official file.*60 lines, the official one 119"):
        miracl.load_queries("yo")
    qrels = _cached(isolated_env, "dev/qrels.tsv")
    qrels.write_text(qrels.read_text(encoding="utf-8").replace("\t1\n", "\t0\n", 3), encoding="utf-8")
    with pytest.raises(DataUnavailableError, match="qrels in the ir_datasets cache .* is not the official file"):
        miracl.load_qrels("yo")


def test_a_truncated_corpus_is_one_clear_reason(isolated_env: Path) -> None:
    path = _cached(isolated_env, "docs/docs-1.jsonl.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataUnavailableError, match="cannot be read: EOFError.*truncated or corrupt"):
        miracl.load_corpus("yo")


def test_corpus_identity_changes_with_the_files(isolated_env: Path) -> None:
    first = miracl.corpus_identity("yo")
    assert first["passages"] == 49043 and len(first["sha256"]) == 64 and first["official_md5"] is False
    assert miracl.corpus_identity("yo") == first
    path = _cached(isolated_env, "docs/docs-1.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    lines[5] = lines[5].replace('"text": "', '"text": "changed ')
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    assert miracl.corpus_identity("yo")["sha256"] != first["sha256"]


def test_lang_all_evaluates_the_benchmarks_default_languages_and_says_why_some_cannot_be(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clir_ot.cli import app
    from clir_ot.languages import MIRACL_LANGUAGES, parse_language_list

    assert parse_language_list("ALL") == ["sw", "yo", "te", "bn", "hi", "th"]
    assert parse_language_list("all", MIRACL_LANGUAGES) == list(MIRACL_LANGUAGES)  # 18 where that is the default
    assert parse_language_list("ja,yo,ja") == ["ja", "yo"]  # any of the 18 by name
    result = CliRunner().invoke(app, ["eval", "--lang", "all", "--model", "bm25", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["lang"]: r for r in json.loads(result.stdout)["results"]}
    assert list(rows) == ["sw", "yo", "te", "bn", "hi", "th"]
    assert rows["yo"]["status"] == "ok" and rows["yo"]["metrics"]["R@100"] == pytest.approx(0.7325, abs=5e-5)
    for lang in ("sw", "te", "bn", "hi", "th"):  # no corpus offline: listed with the command that would fill it
        assert rows[lang]["status"] == "unavailable" and f"--lang {lang}" in rows[lang]["reason"]
