"""A lean parser for the common request body: one key holding a rectangular array of JSON numbers.

Why: ``json.loads`` turns an 8 MiB ``{"series": [[...], ...]}`` into ~300k Python lists and ~1M float objects
(about 7x the body, and glibc keeps the pages), then NumPy copies them again. Here the bytes go straight to one
float64 array: the structure is checked on a skeleton of brackets and commas, every token against the JSON number
grammar, and the values are read by NumPy's C parser, so the extra memory is a few copies of the body's size.

Anything this parser does not fully vouch for (another key, strings, ``null``, NaN, ragged or empty lists, deep
nesting, a value beyond float32's range) returns ``None`` and the caller falls back to ``json.loads`` +
:func:`edgepipe.runtime.bodies.parse_body`, whose errors name the offending element; so accepting a body here never
changes what is accepted or what it means, only what it costs.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from edgepipe.runtime.checker import FLOAT32_MAX

_ENVELOPE = re.compile(rb'\A\s*\{\s*"(series|windows|features|observations)"\s*:\s*(\[.*\])\s*\}\s*\Z', re.S)
_ALLOWED = re.compile(rb'[^\[\]0-9eE+\-.,]')  # after whitespace is removed
_WHITESPACE = b" \t\r\n"
_NUMBER_CHARS = b"0123456789eE+-."
MAX_DEPTH = 4
CHUNK = 1 << 20  # bytes checked at once: bounds the grammar check's temporaries


def _table(chars: bytes) -> np.ndarray:
    table = np.zeros(257, dtype=bool)  # index 256: before the start / after the end
    table[list(chars)] = True
    return table


_DIGIT = _table(b"0123456789")
# what may come right before / right after each character of a compact array of JSON numbers; index 256 is the
# edge of the text (only brackets may touch it)
_PREV = {ord(c): _table(p) for c, p in (("[", b"[,"), ("]", b"0123456789]"), (",", b"0123456789]"),
                                         ("-", b"[,eE"), ("+", b"eE"), (".", b"0123456789"),
                                         ("e", b"0123456789"), ("E", b"0123456789"))}
_NEXT = {ord(c): _table(n) for c, n in (("[", b"0123456789-["), ("]", b"],"), (",", b"0123456789-["),
                                         ("-", b"0123456789"), ("+", b"0123456789"), (".", b"0123456789"),
                                         ("e", b"0123456789+-"), ("E", b"0123456789+-"))}
for _edge in (ord("["), ord("]")):
    _PREV[_edge][256] = _NEXT[_edge][256] = True


def parse_numeric_body(raw: bytes, allowed_keys: list[str]) -> tuple[str, np.ndarray] | None:
    """``(key, float64 array)`` for ``{"<key>": [[n, ...], ...]}`` with ``key`` in ``allowed_keys``, else None."""
    match = _ENVELOPE.match(raw)
    if match is None or match.group(1).decode() not in allowed_keys:
        return None
    key = match.group(1).decode()
    compact = match.group(2).translate(None, _WHITESPACE)
    if _ALLOWED.search(compact) or not _grammar_ok(compact):
        return None
    skeleton = compact.translate(None, _NUMBER_CHARS)
    shape = _shape(skeleton)
    if shape is None or _skeleton(shape) != skeleton:
        return None
    count = int(np.prod(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy warns (rather than raising) when the text does not parse to the end
        try:
            values = np.fromstring(compact.translate(None, b"[]").decode("ascii"), dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            return None
    # non-finite, or beyond float32 (inf in the model): the full parser names the element
    if values.size != count or not (np.abs(values) <= FLOAT32_MAX).all():
        return None
    return key, values.reshape(shape)


def _grammar_ok(text: bytes) -> bool:
    """Every character has legal neighbours for JSON numbers in lists: no ``+1``, ``01``, ``.5``, ``1.``, ``1e``,
    ``1-2``, ``[]``, ``,,``, ``]1``. (A token that still does not parse, such as ``1.2.3``, fails the value count.)"""
    data = np.frombuffer(text, dtype=np.uint8)
    for lo in range(0, len(data), CHUNK):
        hi = min(len(data), lo + CHUNK)
        here = data[lo:hi]
        prev = np.empty(hi - lo, dtype=np.int16)
        prev[1:] = here[:-1]
        prev[0] = data[lo - 1] if lo else 256
        after = np.empty(hi - lo, dtype=np.int16)
        after[:-1] = here[1:]
        after[-1] = data[hi] if hi < len(data) else 256
        for char in _PREV:
            at = here == char
            if at.any() and not (_PREV[char][prev[at]].all() and _NEXT[char][after[at]].all()):
                return False
        # a leading zero followed by a digit (01, -01): the zero starts a token (after [ , or a sign at one)
        zero = (here == ord("0")) & _DIGIT[after]
        if zero.any():
            idx = np.flatnonzero(zero) + lo
            before = np.where(idx > 0, data[np.maximum(idx - 1, 0)], ord(","))
            sign_start = (before == ord("-")) & np.isin(np.where(idx > 1, data[np.maximum(idx - 2, 0)], ord(",")),
                                                          list(b"[,"))
            if (np.isin(before, list(b"[,")) | sign_start).any():
                return False
    return True


def _shape(skeleton: bytes) -> tuple[int, ...] | None:
    """Dimensions read off the first element at each level (rectangularity is checked by the caller)."""
    depth = len(skeleton) - len(skeleton.lstrip(b"["))
    if not 1 <= depth <= MAX_DEPTH + 1:
        return None
    inner = []
    for level in range(1, depth):
        length = _first_list_length(skeleton, level)
        if length is None:
            return None
        inner.append(length)
    # an empty list and a one-number list have the same skeleton: the caller's value count tells them apart
    if depth == 1:
        return (skeleton.count(b",") + 1,)
    per_outer = len(_skeleton(tuple(inner)))
    if (len(skeleton) - 2 + 1) % (per_outer + 1):
        return None
    return ((len(skeleton) - 1) // (per_outer + 1), *inner)


def _first_list_length(skeleton: bytes, level: int) -> int | None:
    """Elements of the first list at nesting ``level`` (0 = outermost), counted up to its closing bracket."""
    depth, elements = 0, 1
    for i in range(level, len(skeleton)):
        char = skeleton[i]
        if char == 0x5B:  # [
            depth += 1
        elif char == 0x5D:  # ]
            depth -= 1
            if depth == 0:
                return elements
        elif char == 0x2C and depth == 1:  # ,
            elements += 1
    return None


def _skeleton(shape: tuple[int, ...]) -> bytes:
    """Brackets and commas of a rectangular array of ``shape`` with the numbers removed."""
    if len(shape) == 1:
        return b"[" + b"," * (shape[0] - 1) + b"]"
    inner = _skeleton(shape[1:])
    return b"[" + b",".join([inner] * shape[0]) + b"]"
