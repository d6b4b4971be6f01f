"""Language codes: the 18 MIRACL languages and the six low-resource evaluation languages."""

from __future__ import annotations

from .errors import ClirOtError

#: Low-resource MIRACL languages evaluated zero-shot; never allowed in training data.
EVAL_LANGUAGES: tuple[str, ...] = ("sw", "yo", "te", "bn", "hi", "th")

#: All 18 MIRACL v1.0 languages, the six low-resource ones first.
MIRACL_LANGUAGES: tuple[str, ...] = EVAL_LANGUAGES + (
    "ar", "de", "en", "es", "fa", "fi", "fr", "id", "ja", "ko", "ru", "zh",
)

LANGUAGE_NAMES: dict[str, str] = {
    "sw": "Swahili", "yo": "Yoruba", "te": "Telugu", "bn": "Bengali", "hi": "Hindi", "th": "Thai",
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "id": "Indonesian", "ja": "Japanese", "ko": "Korean",
    "ru": "Russian", "zh": "Chinese", "it": "Italian", "nl": "Dutch", "pt": "Portuguese",
    "tr": "Turkish",
}


def check_language(code: str, allowed: tuple[str, ...] = MIRACL_LANGUAGES) -> str:
    """Return ``code`` normalised (lower case, stripped) or raise a clear error naming the choices."""
    norm = code.strip().lower()
    if norm not in allowed:
        raise ClirOtError(f"unknown language code {code!r}; expected one of: {', '.join(allowed)}")
    return norm


def parse_language_list(spec: str | None, default: tuple[str, ...] = EVAL_LANGUAGES,
                        allowed: tuple[str, ...] = MIRACL_LANGUAGES) -> list[str]:
    """Parse ``"sw,yo"`` into ``["sw", "yo"]`` (validated, order kept, duplicates removed)."""
    if spec is None or not spec.strip():
        return list(default)
    out: list[str] = []
    for part in spec.split(","):
        if part.strip():
            code = check_language(part, allowed)
            if code not in out:
                out.append(code)
    return out
