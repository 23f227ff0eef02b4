"""Bencode, the encoding rtpengine's ng protocol speaks (BEP 3).

Integers ``i42e``, byte strings ``4:spam``, lists ``l...e`` and dictionaries ``d...e`` whose keys
are byte strings in sorted order. We encode ``str`` as its UTF-8 bytes and decode byte strings
back to ``str`` (undecodable bytes kept by ``surrogateescape``, so nothing is lost). Decoding is
strict where it matters: leading zeros, ``i-0e``, repeated keys, trailing bytes, truncation and
nesting deeper than ``MAX_DEPTH`` are each a :class:`BencodeError` naming the offset. Unsorted
keys are accepted (rtpengine's answers do not sort them); what we encode is sorted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "Bencodable", "BencodeError", "decode", "encode"]

MAX_DEPTH = 64

Bencodable = int | str | bytes | list[Any] | dict[str, Any]


class BencodeError(ValueError):
    """Bytes that are not one well-formed bencoded value, or a value bencode cannot hold."""


def encode(value: Bencodable) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: object, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool):  # a bool is an int to Python, not to bencode
        raise BencodeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        out.append(b"%d:%s" % (len(data), data))
    elif isinstance(value, bytes):
        out.append(b"%d:%s" % (len(value), value))
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        keys: list[tuple[bytes, object]] = []
        for key, item in value.items():
            if isinstance(key, str):
                keys.append((key.encode("utf-8", "surrogateescape"), item))
            elif isinstance(key, bytes):
                keys.append((key, item))
            else:
                raise BencodeError(f"dictionary key {key!r} is not a string")
        keys.sort(key=lambda pair: pair[0])
        out.append(b"d")
        for key_bytes, item in keys:
            out.append(b"%d:%s" % (len(key_bytes), key_bytes))
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode a {type(value).__name__}")


def decode(data: bytes) -> Any:
    """The one value ``data`` holds; byte strings come back as ``str``."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"trailing bytes after the value at offset {end}")
    return value


def _decode(data: bytes, i: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise BencodeError(f"nested deeper than {MAX_DEPTH} levels at offset {i}")
    if i >= len(data):
        raise BencodeError(f"truncated: a value expected at offset {i}")
    lead = data[i]
    if lead == 0x69:  # i
        end = data.find(b"e", i + 1)
        if end < 0:
            raise BencodeError(f"truncated integer at offset {i}")
        return _integer(data[i + 1 : end], i), end + 1
    if lead == 0x6C:  # l
        items: list[Any] = []
        i += 1
        while True:
            if i >= len(data):
                raise BencodeError("truncated list: no closing 'e'")
            if data[i] == 0x65:  # e
                return items, i + 1
            item, i = _decode(data, i, depth + 1)
            items.append(item)
    if lead == 0x64:  # d
        result: dict[str, Any] = {}
        i += 1
        while True:
            if i >= len(data):
                raise BencodeError("truncated dictionary: no closing 'e'")
            if data[i] == 0x65:
                return result, i + 1
            if not 0x30 <= data[i] <= 0x39:
                raise BencodeError(f"dictionary key at offset {i} is not a string")
            start = i
            key, i = _string(data, i)
            name = key.decode("utf-8", "surrogateescape")
            if name in result:
                raise BencodeError(f"dictionary key at offset {start} is repeated")
            value, i = _decode(data, i, depth + 1)
            result[name] = value
    if 0x30 <= lead <= 0x39:
        raw, end = _string(data, i)
        return raw.decode("utf-8", "surrogateescape"), end
    raise BencodeError(f"not bencode at offset {i}: {data[i : i + 10]!r}")


def _integer(digits: bytes, at: int) -> int:
    body = digits[1:] if digits.startswith(b"-") else digits
    if not body or not body.isdigit() or not body.isascii():
        raise BencodeError(f"bad integer at offset {at}: {digits[:20]!r}")
    if (body.startswith(b"0") and len(body) > 1) or digits == b"-0":
        raise BencodeError(f"integer with a leading zero at offset {at}: {digits[:20]!r}")
    return int(digits)


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    colon = data.find(b":", i)
    if colon < 0:
        raise BencodeError(f"truncated string length at offset {i}")
    digits = data[i:colon]
    if not digits.isdigit() or not digits.isascii() or (digits[:1] == b"0" and len(digits) > 1):
        raise BencodeError(f"bad string length at offset {i}: {digits[:20]!r}")
    start = colon + 1
    end = start + int(digits)
    if end > len(data):
        raise BencodeError(f"truncated string at offset {i}: {int(digits)} bytes announced")
    return data[start:end], end
