"""Shared fixtures: an isolated ir_datasets cache, offline mode, and tiny random encoders."""

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
