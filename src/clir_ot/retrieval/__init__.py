"""Retrieval: encoding, exact / FAISS search, BM25, fusion and TREC run files."""
