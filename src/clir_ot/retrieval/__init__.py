"""Retrieval: encoding, exact / FAISS search, BM25, fusion and TREC run files."""

#: documents per shard file of an embeddings directory (:mod:`.encode`): the unit of resuming and of splitting
#: work between processes. Here, not in :mod:`.encode`, so that the CLI can show it without importing numpy.
SHARD_SIZE = 8192
