"""Students as the field's tools load them: sentence-transformers with the E5 prompts, and mteb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clir_ot.data.benchmarks import get_benchmark

pytestmark = pytest.mark.integration

TEXTS = {
    "en": "The river flooded the village after three days of rain.",
    "yo": "Odò náà kún abúlé lẹ́yìn ọjọ́ mẹ́ta òjò.",
    "sw": "Mto ulifurika kijiji baada ya siku tatu za mvua.",
}


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised XLM-R student with the real tokenizer, room for 512 tokens and the E5 prefixes,
    saved the way `clir-ot distill` saves a student."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    from clir_ot.models import Encoder, EncoderSpec
    from clir_ot.models.loading import _package_dir

    torch.manual_seed(0)
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_file=str(_package_dir("tokenizer") / "assets" / "multilingual-e5-small" / "tokenizer.json"))
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, pad_token_id=1)
    directory = tmp_path_factory.mktemp("student")
    Encoder(XLMRobertaModel(config, add_pooling_layer=False), tokenizer,
            EncoderSpec(pooling="mean", query_prefix="query: ", passage_prefix="passage: ", max_length=512,
                        label="tiny student")).save(directory)
    return directory


def test_sentence_transformers_loads_a_student_with_its_prompts(tiny_student: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from clir_ot.models import load_encoder

    ours = load_encoder(str(tiny_student), device="cpu")
    long_passage = " ".join([TEXTS["yo"], TEXTS["sw"], TEXTS["en"]] * 60)
    assert len(ours.tokenizer(long_passage)["input_ids"]) > 1000
    texts = [*TEXTS.values(), long_passage]
    st = SentenceTransformer(str(tiny_student), device="cpu")
    assert st.max_seq_length == 512 and st.tokenizer.model_max_length == 512
    for kind, encode in (("query", st.encode_query), ("passage", st.encode_document)):
        theirs = encode(texts, convert_to_numpy=True)
        cos = (ours.encode(texts, kind) * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
        assert cos.min() >= 0.999, (kind, cos)
        assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)  # Normalize is a module
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_student))
    batch = tok([long_passage], truncation=True, return_tensors="pt")  # the saved maximum applies
    assert batch["input_ids"].shape[1] == 512
    AutoModel.from_pretrained(str(tiny_student))(**batch)


def test_mteb_scores_a_student_as_clir_ot_does(tiny_student: Path) -> None:
    """A tiny retrieval task built from real yo dev queries and judged passages: mteb's nDCG@10 equals ours."""
    import mteb
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata
    from sentence_transformers import SentenceTransformer

    from clir_ot.data import miracl
    from clir_ot.eval import metrics
    from clir_ot.models import load_encoder
    from clir_ot.retrieval.dense import evaluate_collection

    keep = get_benchmark("miracl").sample_query_ids("yo", "dev", 12)
    queries = [q for q in miracl.load_queries("yo") if q.query_id in keep]
    qrels = {qid: j for qid, j in metrics.qrels_dict(miracl.load_qrels("yo")).items() if qid in keep}
    docs = get_benchmark("miracl").pool("yo", "dev", 40, query_ids=keep)
    ours = evaluate_collection(load_encoder(str(tiny_student), device="cpu"), docs, queries, qrels, depth=100)

    class TinyYoRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="ClirOtTinyYoRetrieval", description="12 MIRACL yo dev queries over their judged passages + 40.",
            reference=None, dataset={"path": "local/none", "revision": "0"}, type="Retrieval", category="t2t",
            modalities=["text"], eval_splits=["dev"], eval_langs=["yor-Latn"], main_score="ndcg_at_10",
            date=None, domains=None, task_subtypes=None, license=None, annotations_creators=None,
            dialect=None, sample_creation=None, bibtex_citation="")

        def load_data(self, **kwargs) -> None:
            self.dataset = {"default": {"dev": {
                "corpus": Dataset.from_dict({"id": [d.doc_id for d in docs], "title": [""] * len(docs),
                                             "text": [d.text for d in docs]}),
                "queries": Dataset.from_dict({"id": [q.query_id for q in queries], "text": [q.text for q in queries]}),
                "relevant_docs": {qid: dict(j) for qid, j in qrels.items()}, "top_ranked": None}}}
            self.data_loaded = True

    model = SentenceTransformer(str(tiny_student), device="cpu")
    result = mteb.evaluate(model, tasks=[TinyYoRetrieval()], cache=None, show_progress_bar=False)
    score = result.task_results[0].scores["dev"][0]["ndcg_at_10"]
    assert score == pytest.approx(ours["aggregate"]["nDCG@10"], abs=1e-4), (score, ours["aggregate"])
