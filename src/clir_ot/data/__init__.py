"""Data: MIRACL (topics, qrels, corpora), bitext, lexicons, code-switching and language exclusion."""
