"""Language codes: the 18 MIRACL languages, the six low-resource evaluation languages, and one
normal form for every way of naming a language (ISO 639-1/-2/-3 codes, BCP 47 tags with script or
region subtags, English names), so that ``yor``, ``yo-Latn-NG`` and ``Yoruba`` all compare equal to ``yo``.
"""

from __future__ import annotations

from functools import cache

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


@cache
def normalize_language(label: str) -> str | None:
    """The base language of ``label`` as its shortest ISO 639 code, or ``None`` when it names no language.

    ``yor``, ``yo-Latn-NG``, ``YO`` and ``Yoruba`` → ``yo``; ``swa``, ``swh`` (individual Swahili, folded
    into its macrolanguage) and ``sw_KE`` → ``sw``; ``ben``, ``bn-Beng`` and ``Bangla`` → ``bn``. Uses the
    ``langcodes`` package (IANA registry and CLDR names).
    """
    import langcodes

    text = label.strip().replace("_", "-")
    if not text:
        return None
    try:
        tag = langcodes.standardize_tag(text, macro=True)
        if not langcodes.tag_is_valid(tag):
            return None
        return langcodes.Language.get(tag).language
    except ValueError:  # not a tag: try a language name ("Yoruba", "Kiswahili")
        try:
            return langcodes.find(text).language
        except LookupError:
            return None


def check_language(code: str, allowed: tuple[str, ...] = MIRACL_LANGUAGES) -> str:
    """Return ``code`` normalised (``yor`` → ``yo``) or raise a clear error naming the choices."""
    norm = normalize_language(code) or code.strip().lower()
    if norm not in allowed:
        raise ClirOtError(f"unknown language code {code!r}; expected one of: {', '.join(allowed)}")
    return norm


def parse_language_list(spec: str | None, default: tuple[str, ...] = EVAL_LANGUAGES,
                        allowed: tuple[str, ...] = MIRACL_LANGUAGES) -> list[str]:
    """Parse ``"sw,yo"`` into ``["sw", "yo"]`` (validated, order kept, duplicates removed); nothing or ``all``
    gives ``default`` (for MIRACL evaluation the six excluded languages; every language by name); a given but
    empty list is refused (an empty shell variable should not mean "all")."""
    if spec is None or spec.strip().lower() == "all":
        return list(default)
    if not spec.replace(",", "").strip():
        raise ClirOtError(f"--lang {spec!r} names no language; give codes (sw,yo) or all")
    out: list[str] = []
    for part in spec.split(","):
        if part.strip():
            code = check_language(part, allowed)
            if code not in out:
                out.append(code)
    return out
