"""Evaluation: trec_eval-compatible metrics, significance tests, reports."""
