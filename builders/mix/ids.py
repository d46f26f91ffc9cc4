"""A mixture row's id and content hash: the one derivation everything calls.

In: the source rows' ids (or content hashes), as an Arrow string array, and what makes
the mixture row differ from its source: (mixture config, copy number) for the id, the
conversation format for the content hash. Out: 16-hex-digit strings, one per row.

A source id or content hash is a 64-bit blake2b digest written as 16 lowercase hex digits
(builders/dataset/rows.py). The mixture's value is that number XOR a 64-bit blake2b mask
of what differs: `mask(config, copy)` for ids, `mask(format key)` for content hashes. A
mask is hashed once per distinct copy number (or format), so a batch of rows costs a few
numpy passes, not a hash per row. XOR with a fixed mask is one-to-one, so distinct
source ids stay distinct within a copy; across copies two ids meet only if two source
ids differ by exactly the XOR of two masks (a 64-bit hash collision's odds), and the
stage counts duplicates in every side it writes anyway (`duplicate_count`).

A value that is not 16 lowercase hex digits (a config made outside this toolkit) is
hashed row by row instead, as every mixture row was before (`rows.row_id(config,
source_id, copy)`, `rows.content_hash(source_hash, format_key)`): its mixture value is
still stable, depends on that row alone, and is what earlier versions wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from vlm_autodrive.builders.dataset.rows import content_hash, row_id

HEX_DIGITS = 16  # blake2b, 8 bytes
_SEP = "\x1f"  # cannot occur in ids or the format key (see rows._digest)
_NIBBLE = np.full(256, 255, np.uint8)  # ASCII -> value of a lowercase hex digit, 255: not one
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)


def mixture_row_ids(config: str, source_ids: pa.Array, copies: np.ndarray) -> pa.StringArray:
    """The id of each mixture row: its source row's id (`source_ids[i]`) and its copy
    number (`copies[i]`, 0 the row itself) in the mixture config `config`."""
    return hex_strings(mixture_row_id_values(config, source_ids, copies))


def mixture_row_id_values(config: str, source_ids: pa.Array, copies: np.ndarray) -> np.ndarray:
    """`mixture_row_ids` as their uint64 values (what the stage counts duplicates in)."""
    copies = np.asarray(copies, np.int64)
    distinct, where = np.unique(copies, return_inverse=True)
    masks = np.array([_mask("row", config, int(c)) for c in distinct], np.uint64)[where]
    return _xor_or_hash(source_ids, masks, lambda s, i: row_id(config, s, int(copies[i])))


def mixture_content_hashes(source_hashes: pa.Array, format_key: str) -> pa.StringArray:
    """The content hash of each mixture row: its source row's content hash in the
    conversation format `format_key` (system prompt name and hash, reasoning or not)."""
    masks = np.full(len(source_hashes), _mask("content", format_key), np.uint64)
    return hex_strings(_xor_or_hash(source_hashes, masks, lambda s, i: content_hash(s, format_key)))


def mixture_row_id(config: str, source_id: str, copy: int) -> str:
    """`mixture_row_ids` of one row (tests, tools that check a single row)."""
    return mixture_row_ids(config, pa.array([source_id]), np.array([copy])).to_pylist()[0]


def mixture_content_hash(source_hash: str, format_key: str) -> str:
    """`mixture_content_hashes` of one row."""
    return mixture_content_hashes(pa.array([source_hash]), format_key).to_pylist()[0]


def hex_values(hexes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """16-hex-digit strings -> (their uint64 values, which rows are such strings); a row
    that is not (other length, other characters, uppercase, null) has value 0 and False."""
    arr = hexes.combine_chunks() if isinstance(hexes, pa.ChunkedArray) else hexes
    arr = arr.cast(pa.string()) if arr.type != pa.string() else arr
    n = len(arr)
    values, ok = np.zeros(n, np.uint64), np.zeros(n, bool)
    if n == 0:
        return values, ok
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    ok = np.diff(offsets) == HEX_DIGITS
    if arr.null_count:
        ok &= ~np.asarray(arr.is_null())
    if ok.all():  # the usual case: the strings lie end to end, a (n, 16) view of the bytes
        chars = data[offsets[0] : offsets[0] + n * HEX_DIGITS]
        if (parsed := _lowercase_hex(chars)) is not None:
            return parsed, ok
        chars = chars.reshape(n, HEX_DIGITS)
    else:
        chars = data[offsets[:-1][ok][:, None] + np.arange(HEX_DIGITS)]
    nibbles = _NIBBLE[chars]
    good = (nibbles < 16).all(axis=1)
    ok[np.flatnonzero(ok)[~good]] = False
    nibbles = nibbles[good]
    packed = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])  # 8 bytes a row
    values[ok] = packed.view(">u8").reshape(-1)
    return values, ok


def _lowercase_hex(chars: np.ndarray) -> np.ndarray | None:
    """The uint64 values of 16-digit groups laid end to end in `chars` (ASCII bytes), or
    None when any character is not a lowercase hex digit. `bytes.fromhex` parses them in
    one C call (5x faster than the nibble table); it also takes uppercase digits and
    spaces, so the values are written back as hex and must give the same text."""
    try:
        text = chars.tobytes().decode("ascii")
        parsed = np.frombuffer(bytes.fromhex(text), ">u8")
    except ValueError:  # UnicodeDecodeError is one
        return None
    if len(parsed) * HEX_DIGITS != len(text) or parsed.tobytes().hex() != text:
        return None
    return parsed.astype(np.uint64)


def hex_strings(values: np.ndarray) -> pa.StringArray:
    """uint64 values -> 16-hex-digit strings (as `hexdigest()` writes an 8-byte digest),
    built from one hex text and fixed offsets (no Python string per row)."""
    text = np.asarray(values, ">u8").tobytes().hex().encode("ascii")
    offsets = np.arange(0, len(text) + 1, HEX_DIGITS, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(text))


def duplicate_count(ids: np.ndarray) -> int:
    """How many of `ids` (uint64 values) repeat an earlier one (sorting: several times
    faster than `np.unique`'s hash table here)."""
    ordered = np.sort(ids)
    return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


def _mask(*parts: object) -> int:
    data = _SEP.join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _xor_or_hash(
    sources: pa.Array, masks: np.ndarray, hashed: Callable[[str | None, int], str]
) -> np.ndarray:
    """The values of `sources` XOR `masks` (uint64); a row whose source is not 16 hex
    digits gets the value of `hashed(source, row)` instead."""
    values, ok = hex_values(sources)
    out = values ^ masks
    if not ok.all():
        odd = np.flatnonzero(~ok)
        texts = sources.take(pa.array(odd)).to_pylist()
        out[odd] = [int(hashed(s, i), 16) for s, i in zip(texts, odd.tolist())]
    return out
