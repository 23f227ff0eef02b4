"""G.711 µ-law / A-law codec tables (ITU-T G.711), written from the standard's segment rules.

Decoding is table driven and vectorised through ``bytes.translate``: one table yields the low byte
and one the high byte of each little-endian 16-bit sample, so a 160-byte payload becomes 320 bytes
of PCM without a Python-level loop. Encoding (used to build tone payloads once) is per sample.
"""

from __future__ import annotations

PT_PCMU = 0
PT_PCMA = 8

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def ulaw_to_linear(code: int) -> int:
    """Decode one µ-law byte to a signed 16-bit sample (range ±32124)."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return _ULAW_BIAS - t if u & 0x80 else t - _ULAW_BIAS


def alaw_to_linear(code: int) -> int:
    """Decode one A-law byte to a signed 16-bit sample (range ±32256)."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def linear_to_ulaw(sample: int) -> int:
    """Encode a signed 16-bit sample to µ-law."""
    sign = 0
    if sample < 0:
        sample = -sample
        sign = 0x80
    sample = min(sample, _ULAW_CLIP) + _ULAW_BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def linear_to_alaw(sample: int) -> int:
    """Encode a signed 16-bit sample to A-law."""
    if sample >= 0:
        sign = 0x80
    else:
        sign = 0
        sample = -sample - 1
    sample = min(sample, 32767) >> 3  # 13-bit magnitude
    if sample < 32:
        code = sample >> 1
    else:
        seg = sample.bit_length() - 5  # 1..7
        code = (seg << 4) | ((sample >> seg) & 0x0F)
    return (code | sign) ^ 0x55


def _split_tables(decode: list[int]) -> tuple[bytes, bytes]:
    low = bytes(v & 0xFF for v in decode)
    high = bytes((v >> 8) & 0xFF for v in decode)
    return low, high


ULAW_DECODE: tuple[int, ...] = tuple(ulaw_to_linear(i) for i in range(256))
ALAW_DECODE: tuple[int, ...] = tuple(alaw_to_linear(i) for i in range(256))
_ULAW_LOW, _ULAW_HIGH = _split_tables(list(ULAW_DECODE))
_ALAW_LOW, _ALAW_HIGH = _split_tables(list(ALAW_DECODE))


def _decode(payload: bytes, low: bytes, high: bytes) -> bytearray:
    pcm = bytearray(2 * len(payload))
    pcm[0::2] = payload.translate(low)
    pcm[1::2] = payload.translate(high)
    return pcm


def decode_ulaw(payload: bytes) -> bytearray:
    """µ-law bytes to 16-bit little-endian PCM."""
    return _decode(payload, _ULAW_LOW, _ULAW_HIGH)


def decode_alaw(payload: bytes) -> bytearray:
    """A-law bytes to 16-bit little-endian PCM."""
    return _decode(payload, _ALAW_LOW, _ALAW_HIGH)


def decoder_for(payload_type: int) -> tuple[bytes, bytes] | None:
    """The (low, high) translate tables for a static G.711 payload type, else None."""
    if payload_type == PT_PCMU:
        return _ULAW_LOW, _ULAW_HIGH
    if payload_type == PT_PCMA:
        return _ALAW_LOW, _ALAW_HIGH
    return None


def decode(payload: bytes, tables: tuple[bytes, bytes]) -> bytearray:
    """Decode with tables from :func:`decoder_for`."""
    return _decode(payload, tables[0], tables[1])
