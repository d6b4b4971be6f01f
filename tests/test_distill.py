"""The distillation trainer on a tiny random student: resume, NaN stop, exclusion, outputs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from clir_ot.data.benchmarks import get_benchmark
from clir_ot.data.bitext import BitextPair, read_bitext, write_bitext
from clir_ot.data.training import DEMO_BITEXT, resolve_data_path
from clir_ot.distill import trainer
from clir_ot.distill.trainer import DistillConfig, NonFiniteLossError, final_weights, train
from clir_ot.errors import ClirOtError, ExclusionError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_bitext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pairs = read_bitext(resolve_data_path(DEMO_BITEXT)[0]).without_held_out().pairs  # 80 rows that all train
    picked = [p for p in pairs if p.lang == "de"][:40] + [p for p in pairs if p.lang == "fr"][:40]
    path = tmp_path_factory.mktemp("bitext") / "small.tsv"
    write_bitext(path, picked)
    return path


def config(student: Path, bitext: Path, **kw) -> DistillConfig:
    base = dict(lang="sw", student=str(student), bitext=[str(bitext)], steps=6, batch_size=4, max_length=32,
                lr=1e-3, warmup_steps=2, checkpoint_every=2, probe_langs=["sw", "yo"], check_pool=20, seed=3)
    return DistillConfig(**(base | kw))


@pytest.mark.parametrize("method", ["ot", "kd", "ot+kd"])
def test_resume_ends_with_the_same_weights(method, tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    cfg = config(tiny_xlmr_dir, small_bitext, method=method)
    train(cfg, tmp_path / "full", evaluate=False)

    def interrupt(step: int, record: dict) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", evaluate=False, on_step=interrupt)
    assert (tmp_path / "cut" / "checkpoint").is_dir() and not (tmp_path / "cut" / "student").exists()
    train(cfg, tmp_path / "cut", resume=True, evaluate=False)
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # step 5 ran twice; the log keeps the resumed run's
    assert not (tmp_path / "cut" / "checkpoint").exists()


def test_outputs_probe_manifest_and_frozen_embeddings(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    from clir_ot.models import load_encoder

    manifest = train(config(tiny_xlmr_dir, small_bitext, method="ot"), tmp_path / "run")
    out = tmp_path / "run"
    student = load_encoder(str(out / "student"))
    assert student.spec.query_prefix == "query: " and "ot distilled (seed 3)" in student.spec.label
    before = load_encoder(str(tiny_xlmr_dir))
    emb = "embeddings.word_embeddings.weight"
    assert torch.equal(student.model.state_dict()[emb], before.model.state_dict()[emb])
    assert not torch.equal(student.model.state_dict()["encoder.layer.0.attention.self.query.weight"],
                           before.model.state_dict()["encoder.layer.0.attention.self.query.weight"])
    probe = json.loads((out / "probe.json").read_text())
    assert set(probe["before"]["probe"]) == {"sw", "yo"} and set(probe["after"]["probe"]) == {"sw", "yo"}
    assert 0 <= probe["after"]["probe"]["sw"]["accuracy"] <= 1 and probe["after"]["probe"]["yo"]["pairs"] == 48
    from clir_ot.data import miracl

    sample = get_benchmark("miracl").sample_query_ids("yo", "dev", 30)
    judged = {q.doc_id for q in miracl.load_qrels("yo", "dev") if q.query_id in sample}
    check = probe["after"]["retrieval_check"]
    assert len(sample) == 30 and check["documents"] == len(judged) + 20 and "30 sampled queries" in check["corpus"]
    data = manifest["training_data"]
    assert data["excluded_languages"] == ["sw", "yo", "te", "bn", "hi", "th"]
    assert data["training_languages"] == ["de", "fr"] and data["bitext"][0]["rows"] == 80
    assert len(data["bitext"][0]["sha256"]) == 64 and manifest["seed"] == 3
    assert "torch" in manifest["versions"] and manifest["steps"] == 6
    card = (out / "student" / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: sentence-transformers" in card
    assert "Excluded from training (never trained on, audited by label and content): sw, yo, te, bn, hi, th" in card
    assert "| small.tsv | bitext | 80 | 0 |" in card and "## Contamination" in card
    after_sw = probe["after"]["probe"]["sw"]["accuracy"]
    assert f"| sw | {probe['before']['probe']['sw']['accuracy']:.3f} | {after_sw:.3f} |" in card
    assert json.loads((out / "student" / "config_sentence_transformers.json").read_text())["prompts"] == {
        "query": "query: ", "document": "passage: "}
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert all({"loss", "ot_cost", "plan_entropy", "kd_en", "tokens_per_s"} <= r.keys() for r in log)
    assert (out / "config.yaml").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_xlmr_dir, small_bitext, tmp_path, monkeypatch) -> None:
    real = trainer.compute_losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        result = real(*args, **kwargs)
        if calls["n"] == 3:
            result["loss"] = result["loss"] * float("nan")
        return result

    monkeypatch.setattr(trainer, "compute_losses", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3.*last good checkpoint"):
        train(config(tiny_xlmr_dir, small_bitext), tmp_path / "run", evaluate=False)
    state = torch.load(tmp_path / "run" / "checkpoint" / "trainer.pt", weights_only=False)
    assert state["step"] == 2 and not (tmp_path / "run" / "student").exists()


def test_evaluation_language_in_training_data_is_refused_and_nothing_written(tiny_xlmr_dir, tmp_path) -> None:
    path = tmp_path / "with_sw.tsv"
    write_bitext(path, [BitextPair("de", "t", "1", "The house is red and big.", "Das Haus ist rot und groß.", 0),
                        BitextPair("sw", "t", "2", "The house is red and big.", "Nyumba ni nyekundu na kubwa.", 0)])
    out = tmp_path / "out"
    with pytest.raises(ExclusionError, match=r"with_sw\.tsv:3: sw"):
        train(config(tiny_xlmr_dir, path), out)
    assert not out.exists()


def test_existing_output_is_refused_without_overwrite(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ClirOtError, match="already exists"):
        train(config(tiny_xlmr_dir, small_bitext), out, evaluate=False)
    assert (out / "keep.txt").read_text() == "precious"
    with pytest.raises(ClirOtError, match="nothing to resume"):
        train(config(tiny_xlmr_dir, small_bitext), tmp_path / "fresh", resume=True)


def test_config_validation() -> None:
    with pytest.raises(ClirOtError, match="method must be one of"):
        DistillConfig(method="mse")
    with pytest.raises(ClirOtError, match="unknown language code"):
        DistillConfig(lang="xx")


def test_set_values_are_converted_to_their_declared_types() -> None:
    from clir_ot.config import build, parse_overrides

    cfg = build(DistillConfig, parse_overrides(["lr=3e-5", "steps=10", "probe_langs=sw,yor", "ot_reg_m=1"]))
    assert (cfg.lr, cfg.steps, cfg.probe_langs, cfg.ot_reg_m) == (3e-5, 10, ["sw", "yo"], 1.0)
    assert isinstance(cfg.lr, float) and isinstance(cfg.ot_reg_m, float)


@pytest.mark.parametrize(("override", "message"), [
    ("batch_size=2.5", "batch_size must be an integer, got 2.5"),
    ("lr=-1", "lr must be > 0.0"), ("lr=0", "lr must be > 0.0"), ("lr=fast", "lr must be a finite number"),
    ("steps=0", "steps must be ≥ 1"), ("batch_size=0", "batch_size must be ≥ 1"),
    ("checkpoint_every=0", "checkpoint_every must be ≥ 1"), ("ot_reg=0", "ot_reg must be > 0.0"),
    ("ot_reg=-0.1", "ot_reg must be > 0.0"), ("code_switch_p=1.5", "code_switch_p must be ≤ 1.0"),
    ("code_switch_p=-0.1", "code_switch_p must be ≥ 0.0"), ("device=gpu", "unknown device 'gpu'"),
    ("probe_langs=[sw,xx]", "probe language 'xx' is not in the UDHR probe"), ("use_bitext=maybe", "true or false"),
    ("steps=true", "steps must be an integer"), ("ot_grad=exact", "ot_grad must be one of envelope, autodiff"),
    ("lr=.nan", "lr must be a finite number"), ("seed=-1", "seed must be ≥ 0"),
])
def test_bad_values_are_refused_before_any_work(override: str, message: str) -> None:
    from clir_ot.config import build, parse_overrides

    with pytest.raises(ClirOtError, match=message.replace("(", r"\(").replace("+", r"\+")):
        build(DistillConfig, parse_overrides([override]))


def test_a_device_this_machine_lacks_is_refused_when_the_run_starts(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ClirOtError, match="device 'cuda' is not available"):
        train(config(tiny_xlmr_dir, small_bitext, device="cuda"), tmp_path / "run", evaluate=False)
    assert not (tmp_path / "run").exists()


def test_before_evaluation_is_cached_and_teacher_probe_embeddings_reused(tiny_xlmr_dir, small_bitext, tmp_path,
                                                                         monkeypatch) -> None:
    cfg = config(tiny_xlmr_dir, small_bitext, method="kd", steps=2, probe_langs=["yo"], check_lang=None, seed=11)
    first = train(cfg, tmp_path / "a")
    calls: list[int] = []
    real = trainer.evaluate_student
    monkeypatch.setattr(trainer, "evaluate_student", lambda m, c: calls.append(1) or real(m, c))
    second = train(cfg, tmp_path / "b")
    assert len(calls) == 1  # only "after": "before" came from the cache
    assert second["probe"]["before"] == first["probe"]["before"]
    # another probe setting is another cache entry
    train(config(tiny_xlmr_dir, small_bitext, method="kd", steps=2, probe_langs=["sw"], check_lang=None, seed=11),
          tmp_path / "c")
    assert len(calls) == 3

    from clir_ot.distill.probe import translation_probe
    from clir_ot.models import load_encoder

    teacher = load_encoder(str(tiny_xlmr_dir))
    encoded: list[int] = []
    real_encode = teacher.encode
    monkeypatch.setattr(teacher, "encode",
                        lambda texts, *a, **k: encoded.append(len(texts)) or real_encode(texts, *a, **k))
    cache: dict = {}
    once = translation_probe(teacher, teacher, ["sw", "yo"], teacher_cache=cache)
    again = translation_probe(teacher, teacher, ["sw", "yo"], teacher_cache=cache)
    assert once == again
    # first call: distinct English paragraphs (teacher) + sw and yo sides (student); second: student sides only
    assert sum(encoded[:3]) == len(cache) + once["sw"]["pairs"] + once["yo"]["pairs"]
    assert encoded[3:] == [once["sw"]["pairs"], once["yo"]["pairs"]]


def test_a_failed_start_leaves_nothing_and_the_corrected_rerun_runs(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ClirOtError, match="student_layer 9 is outside -1..2"):
        train(config(tiny_xlmr_dir, small_bitext, method="ot", student_layer=9), out, evaluate=False)
    assert not out.exists()
    bad = config(tiny_xlmr_dir, small_bitext, method="kd", lr=1e30, checkpoint_every=4)
    with pytest.raises(NonFiniteLossError, match="No checkpoint was written yet"):
        train(bad, out)  # the "before" probe ran and was written; the loss blows up before the first checkpoint
    assert not out.exists()
    train(config(tiny_xlmr_dir, small_bitext, method="kd", steps=2), out, evaluate=False)
    assert (out / "student" / "model.safetensors").is_file()


def _rotation_states(cut: Path) -> dict[str, Callable[[Path], None]]:
    """What a kill leaves at each step of the checkpoint rotation (write checkpoint.tmp; checkpoint →
    checkpoint.old; checkpoint.tmp → checkpoint; delete checkpoint.old), made from a real checkpoint."""

    def partial(folder: Path) -> None:
        next(p for p in sorted(folder.iterdir()) if p.name != "trainer.pt").unlink()

    def writing_tmp(run: Path) -> None:  # killed while the new checkpoint was being written
        shutil.copytree(run / "checkpoint", run / "checkpoint.tmp")
        (run / "checkpoint.tmp" / "trainer.pt").unlink()

    def after_first_rename(run: Path) -> None:
        shutil.copytree(run / "checkpoint", run / "checkpoint.tmp")
        (run / "checkpoint").rename(run / "checkpoint.old")

    def after_second_rename(run: Path) -> None:
        shutil.copytree(run / "checkpoint", run / "checkpoint.old")

    def deleting_old(run: Path) -> None:
        shutil.copytree(run / "checkpoint", run / "checkpoint.old")
        partial(run / "checkpoint.old")

    return {"writing tmp": writing_tmp, "after the first rename": after_first_rename,
            "after the second rename": after_second_rename, "deleting the old one": deleting_old}


def test_resume_after_a_kill_anywhere_in_the_checkpoint_rotation(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    """Each state a kill can leave during a checkpoint's rotation resumes, rotates again at the next checkpoint,
    and ends with the uninterrupted run's weights, bit for bit."""
    cfg = config(tiny_xlmr_dir, small_bitext, method="kd")
    train(cfg, tmp_path / "full", evaluate=False)
    full = final_weights(tmp_path / "full")

    def interrupt(step: int, record: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", evaluate=False, on_step=interrupt)
    for name, make_state in _rotation_states(tmp_path / "cut").items():
        run = tmp_path / name.replace(" ", "-")
        shutil.copytree(tmp_path / "cut", run)
        make_state(run)
        train(cfg, run, resume=True, evaluate=False)  # rotates at steps 4 and 6
        resumed = final_weights(run)
        assert all(torch.equal(full[k], resumed[k]) for k in full), name
        assert not any((run / f).exists() for f in ("checkpoint", "checkpoint.old", "checkpoint.tmp")), name


def test_a_learned_map_lets_a_teacher_of_another_space_train_and_resume(tiny_xlmr_dir, tiny_bert_dir, small_bitext,
                                                                       tmp_path) -> None:
    """Teacher BERT (hidden 32) and student XLM-R (hidden 16): refused without a map; with one the map is
    trained with the student, checkpointed, and the student alone is saved."""
    with pytest.raises(ClirOtError, match="set teacher_map: true"):
        train(config(tiny_xlmr_dir, small_bitext, method="ot", teacher=str(tiny_bert_dir)), tmp_path / "no",
              evaluate=False)
    cfg = config(tiny_xlmr_dir, small_bitext, method="ot+kd", teacher=str(tiny_bert_dir), teacher_map=True, steps=4)
    train(cfg, tmp_path / "full", evaluate=False)
    learned = torch.load(tmp_path / "full" / "teacher_map.pt")["weight"]
    assert learned.shape == (32, 16)

    def interrupt(step: int, record: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", evaluate=False, on_step=interrupt)
    train(cfg, tmp_path / "cut", resume=True, evaluate=False)
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(torch.load(tmp_path / "cut" / "teacher_map.pt")["weight"], learned)
    from clir_ot.models import load_encoder

    assert load_encoder(str(tmp_path / "full" / "student")).dim == 16  # the map is not part of the student


def test_the_map_starts_from_the_ridge_fit_of_the_students_english_onto_the_teachers(
        tiny_xlmr_dir, tiny_bert_dir, small_bitext, tmp_path, monkeypatch) -> None:
    """The fitted map equals the ridge solution computed directly (numpy, float64) from both models' sentence
    embeddings of the training English (distinct sentences) under both prefixes, brings the student closer to
    the teacher than the random map it replaces, reports its cosine on held-out sentences, and is recorded
    in the run's manifest."""
    import numpy as np

    from clir_ot.distill import teacher_map
    from clir_ot.distill.teacher_map import RIDGE, fit
    from clir_ot.models import load_encoder

    student, teacher = load_encoder(str(tiny_xlmr_dir)), load_encoder(str(tiny_bert_dir))
    english = [p.en for p in read_bitext(small_bitext).pairs]
    texts = list(dict.fromkeys(english))

    def embed(encoder, sentences: list[str]) -> np.ndarray:
        return np.concatenate([encoder.encode(sentences, k, max_length=32).astype(np.float64)
                               for k in ("query", "passage")])

    def ridge(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        lam = RIDGE * np.trace(s.T @ s) / s.shape[1]
        padded_s = np.vstack([s, np.sqrt(lam) * np.eye(s.shape[1])])
        return np.linalg.lstsq(padded_s, np.vstack([t, np.zeros((s.shape[1], t.shape[1]))]), rcond=None)[0].T

    def mean_cosine(w: np.ndarray, s: np.ndarray, t: np.ndarray) -> float:
        mapped = s @ w.T
        return float(np.mean(np.sum(mapped * t, 1) / np.linalg.norm(mapped, axis=1) / np.linalg.norm(t, axis=1)))

    linear = torch.nn.Linear(16, 32, bias=False)
    random_weight = linear.weight.detach().numpy().copy()
    report = fit(linear, student, teacher, english + english[:5], ["query", "passage"], 32)  # repeats count once
    s, t = embed(student, texts), embed(teacher, texts)
    direct = ridge(s, t)
    np.testing.assert_allclose(linear.weight.detach().numpy(), direct, rtol=1e-4, atol=1e-5)
    assert report["sentences"] == len(texts) == 80 and report["kinds"] == ["query", "passage"]
    assert report["mean_cosine_mapped"] == pytest.approx(mean_cosine(direct, s, t), abs=1e-5)
    assert report["mean_cosine_mapped"] > mean_cosine(random_weight, s, t) + 0.1
    assert report["held_out_sentences"] == 0 and report["mean_cosine_mapped_held_out"] is None

    monkeypatch.setattr(teacher_map, "FIT_SENTENCES", 60)  # the other 20 are held out
    held = fit(torch.nn.Linear(16, 32, bias=False), student, teacher, english, ["query", "passage"], 32)
    w60 = ridge(embed(student, texts[:60]), embed(teacher, texts[:60]))
    assert held["sentences"] == 60 and held["held_out_sentences"] == 20
    assert held["mean_cosine_mapped_held_out"] == pytest.approx(
        mean_cosine(w60, embed(student, texts[60:]), embed(teacher, texts[60:])), abs=1e-5)
    monkeypatch.undo()

    cfg = config(tiny_xlmr_dir, small_bitext, method="kd", teacher=str(tiny_bert_dir), teacher_map=True, steps=2)
    manifest = train(cfg, tmp_path / "run", evaluate=False)
    assert manifest["teacher_map_fit"] == report


def test_cpu_bf16_training_follows_the_fp32_loss_trajectory(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    """Opt-in bf16 autocast on the CPU (for machines whose bf16 matrix products are fast): a short run's losses
    stay within 1% of fp32's, step by step, and the manifest says it ran."""
    runs = {}
    for name, cpu_bf16 in (("fp32", False), ("bf16", True)):
        manifest = train(config(tiny_xlmr_dir, small_bitext, method="ot+kd", steps=12, device="cpu",
                                cpu_bf16=cpu_bf16), tmp_path / name, evaluate=False)
        assert manifest["autocast"] == ("bf16" if cpu_bf16 else None)
        runs[name] = [json.loads(x)["loss"] for x in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
    assert len(runs["bf16"]) == 12
    relative = [abs(b - f) / abs(f) for f, b in zip(runs["fp32"], runs["bf16"], strict=True)]
    assert max(relative) < 0.01, relative  # measured: 7e-4 at most
    assert runs["bf16"] != runs["fp32"]  # it did run in bf16


def test_a_trimmed_student_trains_keeps_refusing_and_says_so_in_its_card(tiny_xlmr_dir, small_bitext,
                                                                         tmp_path) -> None:
    """A base model with a trimmed vocabulary (a GPU bundle's mE5-small): distilled on texts within its kept tokens
    it trains, its student still refuses the others and its card says so; a training text with a token outside
    stops the run with one line."""
    from clir_ot.models import load_encoder
    from clir_ot.models.vocabulary import TokenOutsideVocabularyError, restrict_vocabulary

    base = load_encoder(str(tiny_xlmr_dir))
    vocab = base.model.get_input_embeddings().num_embeddings
    rare = list(range(vocab - 10, vocab - 1))  # pieces none of these texts use (the last id, <mask>, is special)
    restrict_vocabulary(base.model, [i for i in range(vocab) if i not in rare])
    base.save(tmp_path / "trimmed")
    train(config(tmp_path / "trimmed", small_bitext, method="kd", steps=2), tmp_path / "run")
    card = (tmp_path / "run" / "student" / "README.md").read_text()
    assert f"**Trimmed vocabulary**: only {vocab - len(rare):,} tokens" in card
    student = load_encoder(str(tmp_path / "run" / "student"))
    with pytest.raises(TokenOutsideVocabularyError, match=f"token id\\(s\\) {rare[0]} are outside"):
        student.model(input_ids=torch.tensor([[0, rare[0], 2]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    full_stop = base.tokenizer(".", add_special_tokens=False)["input_ids"][-1]
    restrict_vocabulary(base.model, [i for i in range(vocab) if i != full_stop])
    base.save(tmp_path / "without-full-stop")
    with pytest.raises(TokenOutsideVocabularyError, match="outside this model's trimmed vocabulary"):
        train(config(tmp_path / "without-full-stop", small_bitext, method="kd", steps=2), tmp_path / "run2")


def test_freeze_above_trains_the_lower_layers_only(tiny_xlmr_dir, small_bitext, tmp_path) -> None:
    from clir_ot.models import load_encoder

    manifest = train(config(tiny_xlmr_dir, small_bitext, method="kd-layer", teacher_layer=1, student_layer=1,
                            freeze_above=1, steps=3), tmp_path / "run", evaluate=False)
    before = load_encoder(str(tiny_xlmr_dir)).model.state_dict()
    after = load_encoder(str(tmp_path / "run" / "student")).model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.startswith("encoder.layer.0.") for k in moved)  # layer 1 of 2 (and the embeddings) trained
    assert not any(k.startswith(("encoder.layer.1.", "pooler.")) for k in moved)
    assert any(k.startswith("encoder.layer.1.") for k in after)  # the frozen layer is there, unchanged
    full = sum(p.numel() for p in load_encoder(str(tiny_xlmr_dir)).model.parameters())
    assert 0 < manifest["student_parameters_trained"] < full
    with pytest.raises(ClirOtError, match="freeze_above 3 is above the student's 2 layers"):
        train(config(tiny_xlmr_dir, small_bitext, freeze_above=3, steps=2), tmp_path / "bad", evaluate=False)


def test_x_source_english_gives_the_objective_the_english_side_on_both_sides(monkeypatch) -> None:
    from clir_ot.data.training import TrainingExample
    from clir_ot.distill import objective

    seen: list = []
    monkeypatch.setattr(objective, "compute", lambda models, cfg, en, x, kind: seen.append((en, x)) or {})
    examples = [TrainingExample("the house", "das Haus", "bitext", "de"),
                TrainingExample("the cat", "the Katze", "codeswitch", "de")]
    trainer.compute_losses(None, DistillConfig(x_source="english"), examples, "query")
    trainer.compute_losses(None, DistillConfig(), examples, "query")
    assert seen == [(["the house", "the cat"], ["the house", "the cat"]),
                    (["the house", "the cat"], ["das Haus", "the Katze"])]
