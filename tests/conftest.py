"""Shared fixtures: an isolated ir_datasets cache, offline mode, and tiny random encoders.

Where each module of ``clir_ot`` is tested (its main test files, and the tiers they hold; a test checks that every
module is listed here):

    artifacts                  test_artifacts (unit), test_hostile (e2e/integration/unit)
    bench                      test_bench (integration), test_models (integration)
    bundle                     test_bundle (e2e/integration)
    cli.choices                test_cli (integration)
    cli.common                 test_cli (integration)
    cli.data                   test_cli (integration), test_training_data (integration)
    cli.experiment             test_cli (integration), test_transfer (unit)
    cli.model                  test_cli (integration)
    cli.retrieval              test_cli (integration), test_wrong_numbers (integration)
    cli.train                  test_cli (integration), test_hostile (e2e/integration/unit)
    config                     test_result_key (e2e/integration/unit), test_config_hashes (unit)
    data                       test_wrong_numbers (integration), test_training_data (integration)
    data.benchmarks            test_ann (integration), test_bible (integration)
    data.bible                 test_bible (integration), test_bundle (e2e/integration)
    data.bitext                test_experiment (e2e/integration), test_bible (integration)
    data.builders              test_training_data (integration), test_wrong_numbers (integration)
    data.codeswitch            test_training_data (integration), test_wrong_numbers (integration)
    data.exclusion             test_training_data (integration), test_bundle (e2e/integration)
    data.lexicon               test_training_data (integration)
    data.miracl                test_miracl (integration), test_wrong_numbers (integration)
    data.partial               test_reproduce (e2e/integration)
    data.selection             test_miracl (integration)
    data.training              test_distill (integration), test_experiment (e2e/integration)
    distill                    test_distill (integration), test_hostile (e2e/integration/unit)
    distill.card               test_objective_label (unit)
    distill.checkpoint         test_distill (integration), test_hostile (e2e/integration/unit)
    distill.components         test_bundle (e2e/integration), test_objective (integration)
    distill.config             test_objective (integration), test_result_key (e2e/integration/unit)
    distill.distributed        test_distributed (e2e), test_hostile (e2e/integration/unit)
    distill.explain            test_reproduce (e2e/integration)
    distill.losses             test_sinkhorn (unit)
    distill.masks              test_sinkhorn (unit), test_distill (integration)
    distill.methods            test_cli (integration), test_objective_label (unit)
    distill.objective          test_objective (integration), test_cli (integration)
    distill.probe              test_distill (integration)
    distill.sinkhorn           test_sinkhorn (unit)
    distill.teacher_map        test_distill (integration)
    distill.token_probe        test_bible (integration)
    distill.trainer            test_distill (integration), test_hostile (e2e/integration/unit)
    errors                     test_wrong_numbers (integration), test_bible (integration)
    eval                       test_fidelity (integration), test_field_tools (integration)
    eval.clir_report           test_bible (integration)
    eval.compare               test_compare (integration)
    eval.confirmatory          test_confirmatory (unit)
    eval.drift                 test_reproduce (e2e/integration), test_result_key (e2e/integration/unit)
    eval.evaluate              test_retrieval (integration), test_wrong_numbers (integration)
    eval.expected              test_bible (integration), test_reproduce (e2e/integration)
    eval.fidelity              test_fidelity (integration), test_hostile (e2e/integration/unit)
    eval.gate                  test_fidelity (integration), test_hostile (e2e/integration/unit)
    eval.geometry              test_transforms (e2e/integration/unit)
    eval.metrics               test_metrics (unit), test_field_tools (integration)
    eval.plots                 test_reproduce (e2e/integration)
    eval.report                test_reproduce (e2e/integration), test_transforms (e2e/integration/unit)
    eval.report_geometry       test_transforms (e2e/integration/unit)
    eval.report_per_query      test_transforms (e2e/integration/unit)
    eval.saved                 test_wrong_numbers (integration), test_bible (integration)
    eval.significance          test_significance (unit), test_compare (integration)
    eval.variants              test_transforms (e2e/integration/unit)
    experiment                 test_experiment (e2e/integration), test_hostile (e2e/integration/unit)
    findings                   test_findings (unit)
    inputs                     test_artifacts (unit)
    languages                  test_miracl (integration)
    layout                     test_bible (integration), test_experiment (e2e/integration)
    models                     test_models (integration), test_distill (integration)
    models.attention           test_cpu_attention (integration)
    models.device              test_models (integration), test_distill (integration)
    models.e5s1                test_models (integration)
    models.encoder             test_embedding_cache (integration)
    models.heap                test_cpu_attention (integration)
    models.int8                test_int8 (unit)
    models.loading             test_models (integration), test_cpu_attention (integration)
    models.pooling             test_models (integration)
    models.precision           test_models (integration), test_hostile (e2e/integration/unit)
    models.prepack             test_prepack (integration)
    models.recipes             test_recipes (unit), test_cpu_attention (integration)
    models.vocabulary          test_distill (integration), test_models (integration)
    ranking                    test_metrics (unit), test_wrong_numbers (integration)
    registration               test_hostile (e2e/integration/unit), test_experiment (e2e/integration)
    reproduce                  test_reproduce (e2e/integration), test_hostile (e2e/integration/unit)
    resources                  test_miracl (integration)
    retrieval                  test_retrieval (integration), test_ann (integration)
    retrieval.ann              test_ann (integration)
    retrieval.bm25             test_retrieval (integration), test_miracl (integration)
    retrieval.dense            test_field_tools (integration)
    retrieval.embedding_cache  test_embedding_cache (integration), test_result_key (e2e/integration/unit)
    retrieval.encode           test_retrieval (integration), test_embedding_cache (integration)
    retrieval.fusion           test_retrieval (integration), test_wrong_numbers (integration)
    retrieval.runfile          test_metrics (unit), test_transforms (e2e/integration/unit)
    retrieval.search           test_ann (integration), test_retrieval (integration)
    retrieval.transforms       test_transforms (e2e/integration/unit)
    settings                   test_hostile (e2e/integration/unit), test_wrong_numbers (integration)
    transfer                   test_transfer (unit), test_hostile (e2e/integration/unit)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# ir_datasets fixes its cache paths at import: one cache for the session, emptied before each test.
SESSION_IRDS_HOME = Path(tempfile.mkdtemp(prefix="clir-ot-irds-"))
os.environ["IR_DATASETS_HOME"] = str(SESSION_IRDS_HOME)
# converted models, audit results and unpacked packages of this session stay out of the user's cache
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="clir-ot-cache-"))
os.environ["CLIR_OT_CACHE"] = str(SESSION_CACHE)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's caches go with it (converted models and unpacked packages: tens of MB a session)."""
    shutil.rmtree(SESSION_IRDS_HOME, ignore_errors=True)
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


#: every test belongs to one tier (its closest tier marker: the test's own, else its module's ``pytestmark``):
#: unit (pure functions, no model or corpus), integration (tiny models, small real data, one component end to
#: end), e2e (a whole pipeline: reproduce, torchrun). ``--tier`` runs some of them (``make test-unit``).
TIERS = ("unit", "integration", "e2e")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run slow tests with the real pretrained models")
    parser.addoption("--tier", action="append", choices=TIERS, help="run only this tier (repeatable)")


def tier_of(item: pytest.Item) -> str | None:
    return next((m.name for m in item.iter_markers() if m.name in TIERS), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = [item.nodeid for item in items if tier_of(item) is None]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {', '.join(untiered[:5])}")
    tiers = config.getoption("--tier")
    if tiers:
        kept = [item for item in items if tier_of(item) in tiers]
        config.hook.pytest_deselected(items=[item for item in items if tier_of(item) not in tiers])
        items[:] = kept
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test starts from an empty ir_datasets cache and runs offline (no download attempts)."""
    shutil.rmtree(SESSION_IRDS_HOME / "miracl", ignore_errors=True)
    monkeypatch.setenv("CLIR_OT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return SESSION_IRDS_HOME


def _save_tiny(directory: Path, model, tokenizer, spec) -> Path:
    from clir_ot.models import Encoder

    Encoder(model, tokenizer, spec).save(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the real MiniLM WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from clir_ot.models import EncoderSpec
    from clir_ot.models.loading import minilm_dir

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = BertModel(config, add_pooling_layer=False)
    return _save_tiny(tmp_path_factory.mktemp("tiny-bert"), model, tokenizer,
                      EncoderSpec(pooling="mean", max_length=64, label="tiny-bert"))


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer XLM-R (hidden 16) with the real XLM-R tokenizer and E5 prefixes."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    from clir_ot.models import EncoderSpec
    from clir_ot.models.loading import _package_dir

    torch.manual_seed(0)
    tok_file = _package_dir("tokenizer") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tok_file))
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=32, max_position_embeddings=130,
                              pad_token_id=1)
    model = XLMRobertaModel(config, add_pooling_layer=False)
    return _save_tiny(tmp_path_factory.mktemp("tiny-xlmr"), model, tokenizer,
                      EncoderSpec(pooling="mean", query_prefix="query: ", passage_prefix="passage: ",
                                  max_length=64, label="tiny-xlmr"))


@pytest.fixture
def tiny_experiment(tmp_path: Path, tiny_xlmr_dir: Path):
    """A factory of experiment files for end-to-end tests: one kd condition of the tiny student, seed 0, yo on
    judged + 20 passages, BM25 and the student before as baselines, no bible-clir or diagnostic; ``steps`` and
    any top-level key (``**top``) changed. Returns the file's path (``<name>.yaml``: the run folder's name)."""
    import yaml

    def make(name: str, bitext: Path, steps: int = 2, **top) -> Path:
        spec = {"student": str(tiny_xlmr_dir), "teacher": "self", "conditions": {"kd": {"method": "kd"}},
                "compare": [], "baselines": ["bm25", str(tiny_xlmr_dir)], "eval_langs": ["yo"], "clir_langs": [],
                "diagnostic_langs": [],
                "distill": {"bitext": [str(bitext)], "lexicon": None, "max_length": 32, "lr": 1e-3},
                "profiles": {"tiny": {"seeds": [0], "eval_pool": 20, "distill": {
                    "steps": steps, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "probe_langs": ["yo"],
                    "check_lang": None}}}} | top
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return make
