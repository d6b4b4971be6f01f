"""Models: encoder loading (HF id, local dir, offline packages), pooling, prefixes, conversion."""

from .device import resolve_device
from .encoder import Encoder, EncoderSpec
from .loading import OFFLINE_MODELS, load_encoder

__all__ = ["Encoder", "EncoderSpec", "OFFLINE_MODELS", "load_encoder", "resolve_device"]
