"""Retrieval: encoding, exact / FAISS search, BM25, fusion and TREC run files."""

from .ann import ANN_BACKENDS

#: documents per shard file of an embeddings directory (:mod:`.encode`): the unit of resuming and of splitting
#: work between processes.
SHARD_SIZE = 8192

#: every search backend (``--backend``): exact inner product (chunked matmul + top-k), FAISS flat inner
#: product, or an approximate FAISS index kept beside the embeddings (:mod:`.ann`). Here, not in
#: :mod:`.search`, so that the CLI can offer them without importing torch.
BACKENDS = ("exact", "faiss", *ANN_BACKENDS)
