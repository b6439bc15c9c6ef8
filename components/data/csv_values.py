"""CSV cells -> typed values, and the reason a row is rejected when a cell cannot be used.

Why its own module: which text counts as a number or a timestamp, what value it gets and which reason a bad cell
gives is one contract, shared by both parsing paths of :mod:`csv_rows` (the fast NumPy path checks its blocks with
the same bounds, the exact path reports through these functions) and by the other CSV ingest
(``sources/ingest_csv.py``); it does not depend on how files are cut into ranges and blocks, and is tested on its own
(``test_data_timestamps.py``).

Every ``parse_*`` function takes a column of strings and a ``reason`` array (``None`` = row still good) and fills in
the first problem of a row only (:func:`set_reason`): columns are checked left to right, so the reason given is the
leftmost one. Values beyond float32's range are rejected although finite in float64: they become inf in every
float32 tensor downstream.
"""
from __future__ import annotations

import warnings
from datetime import datetime, timezone

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger finite values are rejected: inf once cast to float32


def epoch(text: str) -> int:
    """One ISO-8601 timestamp -> epoch seconds; naive times are taken as UTC."""
    stamp = datetime.fromisoformat(str(text).strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp())


def parse_floats(column: np.ndarray, name: str, reason: np.ndarray) -> np.ndarray:
    """Strings -> float64; rows that are empty, not numbers, not finite or beyond float32's range (1e308 is finite
    here but inf in every float32 tensor downstream: NaN losses, invalid JSON) get a reason (first one wins)."""
    try:
        values = column.astype(np.float64)
        bad_parse = np.zeros(len(column), dtype=bool)
    except (ValueError, OverflowError):
        values = np.full(len(column), np.nan)
        bad_parse = np.zeros(len(column), dtype=bool)
        for i, text in enumerate(column):  # rare path: only blocks holding a bad value
            try:
                values[i] = float(text)
            except ValueError:
                bad_parse[i] = True
                set_reason(reason, i, f"missing value in column '{name}'" if not text.strip()
                           else f"not a number in column '{name}': {text[:40]!r}")
    for i in np.flatnonzero(~np.isfinite(values) & ~bad_parse):
        set_reason(reason, i, f"non-finite value in column '{name}': {column[i][:40]!r}")
    for i in np.flatnonzero(np.abs(values) > FLOAT32_MAX):  # NaN compares False: only finite giants
        set_reason(reason, i, f"value out of float32 range in column '{name}': {column[i][:40]!r}")
    return values


def parse_timestamps(column: np.ndarray, name: str, reason: np.ndarray) -> np.ndarray:
    """ISO-8601 / 'YYYY-mm-dd HH:MM:SS' strings -> int64 epoch seconds (UTC if no offset).

    Why two steps: the plain fixed format (nearly every row of a typical file) is parsed on the code points by
    :func:`fixed_timestamps`, several times faster than NumPy's datetime parser; every other row goes through
    :func:`parse_timestamps_general` as before, so what is accepted, its value and every reject reason are
    unchanged (the fixed parser only accepts rows that parser accepts with the same value).
    """
    seconds, fast = fixed_timestamps(column)
    if fast.all():
        return seconds
    if not fast.any():
        return parse_timestamps_general(column, name, reason)
    rest = np.flatnonzero(~fast)
    rest_reason = reason[rest]
    seconds[rest] = parse_timestamps_general(column[rest], name, rest_reason)
    reason[rest] = rest_reason
    return seconds


# 'YYYY-MM-DD?HH:MM[:SS]': where the digits of each field and the fixed separators are
_YEAR, _MONTH, _DAY, _HOUR, _MINUTE, _SECOND = (0, 1, 2, 3), (5, 6), (8, 9), (11, 12), (14, 15), (17, 18)
_SEPARATORS = {4: "-", 7: "-", 13: ":"}
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)


def fixed_timestamps(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, accepted) of 'YYYY-MM-DD HH:MM:SS' / 'YYYY-MM-DDTHH:MM:SS' strings, or the same without ':SS'.

    Vectorized on the code points (a view, no copy): digits and separators checked, fields range-checked (a real
    calendar day of years 1-9999, h < 24, m < 60, s < 60), then a days-from-civil formula. Anything else (spaces
    around it, offsets, fractions, bare dates, invalid dates ...) is left unaccepted, for the general parser.
    """
    n = len(column)
    if n == 0 or column.dtype.kind != "U":
        return np.zeros(n, np.int64), np.zeros(n, bool)
    length = np.char.str_len(column)  # of the whole string: characters past the 20 read must not be missed
    short = length == 16
    codes = _code_points(column)
    fields = [_number(codes, positions) for positions in (_YEAR, _MONTH, _DAY, _HOUR, _MINUTE, _SECOND)]
    ok = short | ((length == 19) & (codes[:, 16] == ord(":")) & fields[-1][1])
    for _, digits_ok in fields[:-1]:
        ok &= digits_ok
    for pos, sep in _SEPARATORS.items():
        ok &= codes[:, pos] == ord(sep)
    ok &= (codes[:, 10] == ord(" ")) | (codes[:, 10] == ord("T"))
    year, month, day, hour, minute, second = (value for value, _ in fields)
    seconds, valid = _civil_seconds(year, month, day, hour, minute, np.where(short, 0, second))
    ok &= valid
    return np.where(ok, seconds, 0), ok


def _code_points(column: np.ndarray) -> np.ndarray:
    """[n, width >= 20] uint32 view of a str array's UCS-4 code points (0 past a string's end); strided field views
    of a loadtxt table work too, as the per-row item size does not change."""
    if column.dtype.itemsize < 80 or not column.dtype.isnative:
        column = column.astype("U20")
    return column.view(np.dtype((np.uint32, column.dtype.itemsize // 4)))


def _number(codes: np.ndarray, positions: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(value, all digits) of the decimal digits at ``positions`` (int32; garbage where not all digits)."""
    value, ok = None, None
    for p in positions:
        digit = codes[:, p].astype(np.int32) - ord("0")
        is_digit = digit.view(np.uint32) < 10  # below '0' wraps to a large number
        value, ok = (digit, is_digit) if value is None else (value * 10 + digit, ok & is_digit)
    return value, ok


def _civil_seconds(year, month, day, hour, minute, second) -> tuple[np.ndarray, np.ndarray]:
    """(int64 epoch seconds of a proleptic Gregorian UTC time, whether it is a real one) from int32 fields.

    Days from civil: H. Hinnant's algorithm (years counted from March, so the leap day ends a year); years 1-9999
    keep every intermediate inside int32."""
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    valid = ((year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
             & (hour < 24) & (minute < 60) & (second < 60))
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = (era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468).astype(np.int64)
    return days * 86400 + (hour * 3600 + minute * 60 + second), valid


def parse_timestamps_general(column: np.ndarray, name: str, reason: np.ndarray) -> np.ndarray:
    """Any ISO-8601 form NumPy or ``datetime.fromisoformat`` reads; rejects get a reason (see parse_timestamps)."""
    text = np.char.strip(column)
    # NumPy also accepts 'now', 'today' and bare years; require a 'YYYY-mm-dd' prefix to refuse those.
    shaped = np.char.isdigit(text.astype("U4")) & (np.char.str_len(text) >= 10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy warns when converting explicit UTC offsets
            stamps = text.astype("datetime64[s]")
        good = ~np.isnat(stamps) & shaped
        seconds = stamps.astype(np.int64)
    except (ValueError, OverflowError):
        seconds, good = np.zeros(len(text), np.int64), np.zeros(len(text), bool)
        for i, item in enumerate(text):
            try:
                seconds[i], good[i] = epoch(item), bool(shaped[i])
            except (ValueError, OverflowError):
                pass
    for i in np.flatnonzero(~good):
        set_reason(reason, i, f"missing value in column '{name}'" if not text[i]
                   else f"unparsable timestamp in column '{name}': {column[i][:40]!r}")
    return seconds


def set_reason(reason: np.ndarray, i: int, message: str) -> None:
    """Give row ``i`` its reject reason unless it already has one: the first problem from the left is reported."""
    if reason[i] is None:
        reason[i] = message


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (``surrogateescape`` decodes them as lone surrogates)."""
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def utf8_check(cells: np.ndarray, column: str, reason: np.ndarray) -> None:
    """Cells holding bytes that were not UTF-8 (decoded as lone surrogates) get a reason."""
    for i, text in enumerate(cells.tolist()):
        if reason[i] is None and has_surrogates(text):
            set_reason(reason, i, f"invalid UTF-8 in column '{column}'")
