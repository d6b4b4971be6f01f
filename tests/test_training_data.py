"""Training data: readers, code-switching, the exclusion audit and the manifest."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest

from clir_ot.data import exclusion
from clir_ot.data.bible import clean_verse
from clir_ot.data.bitext import BitextPair, read_bitext, write_bitext
from clir_ot.data.builders import _help_paragraphs, build_udhr, keep_pair
from clir_ot.data.codeswitch import CodeSwitcher, detokenize, tokenize
from clir_ot.data.lexicon import Lexicon, clean_translation, read_lexicon
from clir_ot.data.training import DEMO_BITEXT, DEMO_LEXICON, UDHR_PROBE, load_training_data, resolve_data_path
from clir_ot.errors import ClirOtError, ExclusionError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_pairs() -> list[BitextPair]:
    return read_bitext(resolve_data_path(DEMO_BITEXT)[0]).pairs


@pytest.fixture(scope="module")
def demo_lexicon() -> Lexicon:
    return read_lexicon(resolve_data_path(DEMO_LEXICON)[0])


def test_embedded_bitext_lexicon_and_probe_load() -> None:
    demo = read_bitext(resolve_data_path(DEMO_BITEXT)[0])
    assert len(demo.pairs) == 12000 and demo.languages == ["de", "es", "fr", "ru"] and not demo.malformed
    assert {p.source for p in demo.pairs} == {"bible", "lohelp"}
    probe = read_bitext(resolve_data_path(UDHR_PROBE)[0])
    assert {"sw", "yo", "te", "bn", "hi", "th"} <= set(probe.languages) and len(probe.pairs) == 1128
    lex = read_lexicon(resolve_data_path(DEMO_LEXICON)[0])
    assert lex.languages == ["de", "es", "fr", "ru"] and "king" in lex.entries["de"]
    assert "König" in lex.entries["de"]["king"]


def test_malformed_lines_are_counted_with_line_numbers(tmp_path: Path, demo_pairs: list[BitextPair]) -> None:
    path = tmp_path / "b.tsv"
    lines = ["lang\tsource\tref\ten\tx"] + [f"de\tt\t{i}\t{p.en}\t{p.x}" for i, p in enumerate(demo_pairs[:300])]
    lines[10] = "de\tonly three\tfields"
    lines[20] = "de\tt\t1\t\tleer"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bitext = read_bitext(path)
    assert len(bitext.pairs) == 298
    assert bitext.malformed == [(11, "expected 5 tab-separated fields, found 3"), (21, "empty side")]
    with pytest.raises(ClirOtError, match=r"2 of 300 lines are malformed .*line 11"):
        read_bitext(path, max_malformed=0.005)


def test_plain_two_column_file_needs_its_language(tmp_path: Path) -> None:
    path = tmp_path / "plain.tsv"
    path.write_text("The house is red.\tDas Haus ist rot.\nI like tea.\tIch mag Tee.\n", encoding="utf-8")
    with pytest.raises(ClirOtError, match="must be declared with its language") as info:
        read_bitext(path)
    assert f"'{path}:de'" in str(info.value) and "--bitext-lang" not in str(info.value)  # no such option
    bitext = read_bitext(*resolve_data_path(f"{path}:de"))
    assert [p.lang for p in bitext.pairs] == ["de", "de"] and bitext.pairs[1].x == "Ich mag Tee."


def test_muse_and_json_lexicons(tmp_path: Path) -> None:
    muse = tmp_path / "en-de.txt"
    muse.write_text("house Haus\nhouse Gebäude\nred rot\n\nbroken line here\n", encoding="utf-8")
    lex = read_lexicon(muse, "de", max_malformed=0.5)
    assert lex.entries == {"de": {"house": ["Haus", "Gebäude"], "red": ["rot"]}}
    assert lex.malformed == [(5, "expected 2 fields (en_word x_word), found 3")]
    assert clean_translation("einkehren <v") is None and clean_translation(" König ") == "König"


def test_code_switching_is_deterministic_and_rate_matches_p(demo_pairs, demo_lexicon) -> None:
    sentences = [p.en for p in demo_pairs[:1500]]
    for p in (0.2, 0.5, 0.8):
        switcher = CodeSwitcher(demo_lexicon, ["de", "fr", "es", "ru"], p=p)
        rng = random.Random(7)
        results = [switcher(s, rng) for s in sentences]
        switched = sum(len(r.switched) for r in results)
        switchable = sum(r.switchable for r in results)
        assert switchable > 10000
        assert abs(switched / switchable - p) < 0.02, (p, switched / switchable)
        again = [switcher(s, random.Random(7)) for s in sentences[:50]]
        first = [switcher(s, random.Random(7)) for s in sentences[:50]]
        assert again == first
    a = CodeSwitcher(demo_lexicon, ["de", "fr"], p=0.5)
    seeded = [[a(s, random.Random(seed)).text for s in sentences[:20]] for seed in (1, 2)]
    assert seeded[0] != seeded[1]


def test_code_switching_modes_and_extremes(demo_lexicon) -> None:
    text = "The king said to the men of Israel that the house is good."
    none = CodeSwitcher(demo_lexicon, ["de"], p=0.0)(text, random.Random(0))
    assert none.text == detokenize(tokenize(text)) and none.switched == ()
    full = CodeSwitcher(demo_lexicon, ["de"], p=1.0)(text, random.Random(0))
    assert len(full.switched) == full.switchable > 5 and set(full.languages) == {"de"}
    for pos in full.switched:
        assert full.tokens[pos] in demo_lexicon.entries["de"][tokenize(text)[pos].lower()]
    bilingual = CodeSwitcher(demo_lexicon, ["de", "fr", "es"], p=1.0, mode="bilingual")
    multi = CodeSwitcher(demo_lexicon, ["de", "fr", "es"], p=1.0, mode="multilingual")
    rng = random.Random(3)
    assert all(len(set(bilingual(text, rng).languages)) == 1 for _ in range(20))
    assert any(len(set(multi(text, rng).languages)) > 1 for _ in range(20))


def test_training_examples_are_reproducible() -> None:
    data = load_training_data([DEMO_BITEXT], DEMO_LEXICON, "sw")
    first = [ex for _, ex in zip(range(200), data.examples(seed=11), strict=False)]
    again = [ex for _, ex in zip(range(200), data.examples(seed=11), strict=False)]
    other = [ex for _, ex in zip(range(200), data.examples(seed=12), strict=False)]
    assert first == again and first != other
    assert {ex.kind for ex in first} == {"bitext", "codeswitch"}
    assert all(ex.lang in {"de", "fr", "es", "ru", "mix"} for ex in first)


def _write_rows(path: Path, rows: list[tuple[str, str, str]]) -> None:
    write_bitext(path, [BitextPair(lang, "test", str(i), en, x, 0) for i, (lang, en, x) in enumerate(rows)])


def test_single_hindi_row_among_10000_german_rows_is_refused(tmp_path: Path, demo_pairs) -> None:
    german = [p for p in demo_pairs if p.lang == "de"]
    rows = [("de", german[i % len(german)].en, german[i % len(german)].x) for i in range(10000)]
    hindi = "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता प्राप्त है।"
    rows.insert(4321, ("hi", "All human beings are born free.", hindi))
    path = tmp_path / "mixed.tsv.gz"
    _write_rows(path, rows)
    with pytest.raises(ExclusionError) as info:
        load_training_data([str(path)], None, "sw")
    message = str(info.value)
    assert f"{path}:4323: hi" in message  # header is line 1, rows start at line 2


def test_lexicon_with_thai_section_is_refused(tmp_path: Path) -> None:
    import json

    path = tmp_path / "lex.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump({"de": {"house": ["Haus"]}, "th": {"house": ["บ้าน"]}}, f)
    with pytest.raises(ExclusionError, match=r"lex\.json\.gz: th \(lexicon section 'th'"):
        load_training_data([DEMO_BITEXT], str(path), "sw")


def test_udhr_probe_in_sw_is_refused_for_training(tmp_path: Path) -> None:
    path = tmp_path / "udhr_sw.tsv"
    write_bitext(path, build_udhr(["sw"]))
    with pytest.raises(ExclusionError, match=r"udhr_sw\.tsv:2: sw"):
        load_training_data([str(path)], None, "yo")


def test_content_audit_finds_unlabelled_scripts_and_swahili(tmp_path: Path, demo_pairs) -> None:
    probe = read_bitext(resolve_data_path(UDHR_PROBE)[0])
    sw_text = [p.x for p in probe.pairs if p.lang == "sw"][:20]
    te_text = [p.x for p in probe.pairs if p.lang == "te"][:20]
    german = [p for p in demo_pairs if p.lang == "de"][:960]
    rows = [("de", p.en, p.x) for p in german] + [("de", "x", t) for t in sw_text + te_text]
    path = tmp_path / "mislabelled.tsv"
    _write_rows(path, rows)
    bitext = read_bitext(path)
    audit = exclusion.audit_bitext(bitext, exclusion.excluded_languages("sw"))
    counts = audit.content_counts()
    assert counts["te"] == 20 and counts["sw"] >= 18 and not audit.label_findings
    with pytest.raises(ExclusionError, match="above the 0.5% threshold"):
        exclusion.enforce([audit])
    exclusion.enforce([audit], max_content_fraction=0.05)  # 40/1000 is below 5%: allowed, but reported


def test_code_switch_target_in_excluded_language_is_refused() -> None:
    with pytest.raises(ExclusionError, match="hi are excluded"):
        load_training_data([DEMO_BITEXT], DEMO_LEXICON, "sw", train_langs=["de", "hi"])


def test_manifest_hashes_and_counts() -> None:
    data = load_training_data([DEMO_BITEXT], DEMO_LEXICON, "te", train_langs=["de", "fr"])
    manifest = data.manifest()
    path = resolve_data_path(DEMO_BITEXT)[0]
    assert manifest["bitext"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # 429 rows hold a verse of bible-clir's held-out books: 414 by reference, 15 by text (Old Testament verses
    # that the epistles quote, e.g. Psalm 117:1 in Romans 15:11)
    assert manifest["bitext"][0]["rows"] == 11571 and manifest["bitext"][0]["held_out_removed"] == 429
    assert manifest["bitext"][0]["rows_used"] == 5786
    assert manifest["training_languages"] == ["de", "fr"]
    assert manifest["excluded_languages"] == ["sw", "yo", "te", "bn", "hi", "th"]
    assert manifest["lexicon"]["entries"]["de"] == 7475
    assert manifest["code_switching"]["languages"] == ["de", "fr"]
    assert len(data.pairs) == 5786


def test_builder_helpers(tmp_path: Path) -> None:
    assert clean_verse("(32:1) Und Laban stand auf (50:1) früh.") == "Und Laban stand auf früh."
    assert keep_pair("one two three four five", "eins zwei drei vier fünf")
    assert not keep_pair("one two three", "eins zwei drei")
    for lang, text in (("en-US", "Select the <emph>cell</emph> range."), ("de", "Wählen Sie den Zellbereich.")):
        page = tmp_path / lang / "text" / "scalc" / "01" / "a.html"
        page.parent.mkdir(parents=True)
        page.write_text(f'<html><p id="par_id1" class="x">{text}</p><p id="par_id2"></p></html>', encoding="utf-8")
    en = _help_paragraphs(tmp_path / "en-US")
    assert en == {("text/scalc/01/a.html", "par_id1"): "Select the cell range."}
    assert _help_paragraphs(tmp_path / "de").keys() == en.keys()


@pytest.mark.slow
def test_bible_builder_from_the_registry_package() -> None:
    from clir_ot.data.builders import build_bible

    pairs = build_bible(["de", "fr"])
    counts = {lang: sum(p.lang == lang for p in pairs) for lang in ("de", "fr")}
    assert counts["de"] > 25000 and counts["fr"] > 25000
    assert all(keep_pair(p.en, p.x) for p in pairs[:1000])


@pytest.mark.parametrize("label", ["yor", "swa", "swh", "yo-Latn-NG", "Yoruba", "SW", "sw_KE"])
def test_other_codes_for_an_excluded_language_are_refused_by_label(tmp_path: Path, demo_pairs, label: str) -> None:
    """One row among 1,000 is far below the content threshold: only the label check can catch it."""
    german = [p for p in demo_pairs if p.lang == "de"][:999]
    rows = [("de", p.en, p.x) for p in german] + [(label, "Good morning.", "E kaaro.")]
    path = tmp_path / "labelled.tsv"
    path.write_text("lang\tsource\tref\ten\tx\n" + "".join(f"{lang}\tt\t{i}\t{en}\t{x}\n"
                                                            for i, (lang, en, x) in enumerate(rows)), encoding="utf-8")
    with pytest.raises(ExclusionError, match=r"labelled\.tsv:1001: (yo|sw) \(row labelled"):
        load_training_data([str(path)], None, "te")


def test_other_codes_are_refused_in_lexicon_sections_declarations_and_targets(tmp_path: Path) -> None:
    import json

    lex = tmp_path / "lex.json"
    lex.write_text(json.dumps({"deu": {"house": ["Haus"]}, "Swahili": {"house": ["nyumba"]}}), encoding="utf-8")
    with pytest.raises(ExclusionError, match=r"lex\.json: sw \(lexicon section 'sw'"):
        load_training_data([DEMO_BITEXT], str(lex), "te")
    assert read_lexicon(tmp_path / "lex.json").languages == ["de", "sw"]
    plain = tmp_path / "plain.tsv"
    plain.write_text("Good morning.\tE kaaro.\n", encoding="utf-8")
    with pytest.raises(ExclusionError, match="plain.tsv:1: yo"):
        load_training_data([f"{plain}:yor"], None, "te")
    with pytest.raises(ExclusionError, match="yo are excluded"):
        load_training_data([DEMO_BITEXT], DEMO_LEXICON, "te", train_langs=["deu", "yor"])
    data = load_training_data([DEMO_BITEXT], DEMO_LEXICON, "yor", train_langs=["deu", "French"])
    assert data.train_langs == ["de", "fr"] and data.excluded == ["sw", "yo", "te", "bn", "hi", "th"]


def test_parse_dictd_reads_both_freedict_entry_layouts(tmp_path: Path) -> None:
    """FreeDict's dictd files: a headword line, then translations one per line (eng-swh) or numbered with
    quoted examples and {notes} (eng-hin); offsets and lengths in the index are base-64 digits."""
    from clir_ot.data.builders import parse_dictd

    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(n: int) -> str:
        out = ""
        while True:
            out = digits[n % 64] + out
            n //= 64
            if not n:
                return out

    entries = [("00databaseinfo", "header text\n"),
               ("abundance", "abundance /ɐbˈʌndəns/ <n>\n\nwingi\n"),
               ("abet", 'abet /ɐbˈɛt/ <VT>\n1. उकसाना{बुरे~काम~के~लिये}\n      "He was abetting it."\n'),
               ("able", 'able /ˈeɪbəl/ <Adj>\n1. समर्थ\n      "Ram was able."\n2. चतुर, योग्य~व्यक्ति\n')]
    body, index = b"", []
    for head, text in entries:
        data = text.encode("utf-8")
        index.append(f"{head}\t{b64(len(body))}\t{b64(len(data))}")
        body += data
    (tmp_path / "x.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    (tmp_path / "x.dict.dz").write_bytes(gzip.compress(body))
    table = parse_dictd(tmp_path / "x.index", tmp_path / "x.dict.dz")
    assert table == {"abundance": ["wingi"], "abet": ["उकसाना"], "able": ["समर्थ", "चतुर", "योग्य व्यक्ति"]}


def test_a_recorded_audit_verdict_stands_where_lingua_is_not_installed(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """A GPU node without lingua reads the verdicts carried in $CLIR_OT_CACHE/audits; without one the audit is
    refused with one line; a verdict of another lingua version is found again where lingua runs."""
    from clir_ot.data import exclusion
    from clir_ot.data.training import DEMO_BITEXT, load_training_data
    from clir_ot.errors import ClirOtError

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    with_lingua = load_training_data([DEMO_BITEXT], None, "sw").audits[0].content_counts()
    assert with_lingua == {"yo": 3}
    calls: list[int] = []
    real = exclusion.identify_lid_languages
    monkeypatch.setattr(exclusion, "identify_lid_languages", lambda texts: calls.append(1) or real(texts))
    monkeypatch.setattr(exclusion, "_lingua_version", lambda: None)
    assert load_training_data([DEMO_BITEXT], None, "sw").audits[0].content_counts() == with_lingua and not calls
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ClirOtError, match="needs the language identifier lingua") as info:
        load_training_data([DEMO_BITEXT], None, "sw")
    assert "\n" not in str(info.value)
    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(exclusion, "_lingua_version", lambda: "0.0-another")
    assert load_training_data([DEMO_BITEXT], None, "sw").audits[0].content_counts() == with_lingua and calls
