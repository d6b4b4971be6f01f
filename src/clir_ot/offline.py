"""Offline mode: ``CLIR_OT_OFFLINE=1`` (or the Hugging Face offline variables) skips every download attempt."""

from __future__ import annotations

import os

OFFLINE_VARIABLES = ("CLIR_OT_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def is_offline() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in OFFLINE_VARIABLES)
