"""The vectorized fixed-format timestamp parser agrees with NumPy's and ``datetime``'s; whatever it does not accept
is parsed (and rejected) exactly as by the general path; the fast CSV path never parses a cut-off timestamp."""
import warnings

import numpy as np
import pytest

from edgepipe.components.data.csv_rows import TIMESTAMP_WIDTH, Layout, ParseRange
from edgepipe.components.data.csv_values import epoch, fixed_timestamps, parse_timestamps, parse_timestamps_general

SPECIAL = ["2024-02-29 00:00:00", "2000-02-29T12:34:56", "1600-02-29 23:59:59", "1970-01-01 00:00:00",
           "1969-12-31 23:59:59", "1999-12-31T23:59:59", "2000-01-01 00:00:00", "2100-02-28 23:59:59",
           "2100-03-01T00:00:00", "0001-01-01 00:00:00", "9999-12-31T23:59:59", "2024-02-01T00:00", "1900-03-01 00:00"]
MALFORMED = ["2024-13-01 00:00:00", "2024-00-10 00:00:00", "2024-02-30 00:00:00", "2023-02-29 00:00:00",
             "2100-02-29 00:00:00", "1900-02-29T00:00:00", "2024-04-31 00:00:00", "2024-01-00 00:00:00",
             "2024-01-01 24:00:00", "2024-01-01 23:60:00", "2024-01-01 23:59:60", "abcd-01-01 00:00:00",
             "2024-0a-01 00:00:00", "2024/01/01 00:00:00", "2024-01-01 00-00-00", "2024-01-01 00:00:0x",
             "2024-1-1 0:0:0", "2024-01-01 00:00:", "２０２４-01-01 00:00:00", "", " ", "now", "2024"]
# not the fixed format, yet accepted by the general path (some only by NumPy or only by fromisoformat, i.e. only
# in some blocks): left to it
OTHER_VALID = [" 2024-01-01 00:00:00", "2024-01-01 00:00:00 ", "2024-01-01", "2024-01-01T00:00:00Z",
               "2024-01-01T00:00:00+02:00", "2024-01-01 00:00:00.123456", "2024-01-01t00:00:00", "2024-01-01T00",
               "2024-01-01_00:00:00", "0000-01-01 00:00:00", "2024-01-01 00:00:00\x00x"]


def _random_valid(rng, n):
    lo, hi = (np.datetime64(t, "s").astype(np.int64) for t in ("0001-01-01T00:00:00", "9999-12-31T23:59:59"))
    text = rng.integers(lo, hi, n).astype("datetime64[s]").astype(str)
    text = np.where(rng.random(n) < 0.5, np.char.replace(text, "T", " "), text)
    return np.where(rng.random(n) < 0.2, text.astype("U16"), text)  # some without seconds


def _parse(fn, column):
    reason = np.full(len(column), None, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = fn(column, "ts", reason)
    return seconds.tolist(), reason.tolist()


def test_fixed_parser_matches_numpy_and_fromisoformat_on_valid_stamps():
    column = np.concatenate([_random_valid(np.random.default_rng(0), 50_000), SPECIAL])
    seconds, ok = fixed_timestamps(column)
    assert ok.all()
    assert (seconds == column.astype("datetime64[s]").astype(np.int64)).all()
    sample = np.random.default_rng(1).choice(len(column), 2000)
    assert [epoch(t) for t in column[sample]] == seconds[sample].tolist()
    assert [epoch(t) for t in SPECIAL] == seconds[-len(SPECIAL):].tolist()


def test_fixed_parser_refuses_everything_else():
    _, ok = fixed_timestamps(np.array(MALFORMED + OTHER_VALID))
    assert not ok.any()


@pytest.mark.parametrize("seed", range(6))
def test_mixed_blocks_parse_and_reject_exactly_as_the_general_path(seed):
    rng = np.random.default_rng(seed)
    extra = list(rng.choice(MALFORMED + OTHER_VALID, int(rng.integers(0, 8))))
    column = np.array(list(_random_valid(rng, 300)) + list(rng.choice(SPECIAL, 5)) + extra)
    rng.shuffle(column)
    assert _parse(parse_timestamps, column) == _parse(parse_timestamps_general, column)


@pytest.mark.parametrize("text", MALFORMED + OTHER_VALID)
def test_each_odd_stamp_alone_and_beside_valid_ones_as_before(text):
    for column in (np.array([text]), np.array(["2024-01-01 00:00:00", text, "1969-07-20T20:17:40"])):
        assert _parse(parse_timestamps, column) == _parse(parse_timestamps_general, column)
    _, reason = _parse(parse_timestamps, np.array([text]))
    assert (reason[0] is None) == (text in OTHER_VALID)


def test_fast_csv_path_never_parses_a_cut_off_timestamp(tmp_path):
    """loadtxt cuts strings at the field's width without a word: a long field goes to the exact path."""
    padded = "2024-01-01 00:00:00" + " " * TIMESTAMP_WIDTH
    path = tmp_path / "s.csv"
    path.write_text("timestamp,v\n2024-01-01 00:00:10,1\n" + padded + "junk,2\n" + padded + ",3\n")
    fn = ParseRange(Layout("timestamp", None, ("v",), None), {str(path): ["timestamp", "v"]})
    out = list(fn.process((0, str(path), 0, -1)))
    rejects = [o[1][1] for o in out if o[0] == "report" and o[1][0] == "reject"]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (3, "unparsable timestamp in column 'timestamp'")]
    (block,) = [o[1][1] for o in out if o[0] == "data"]
    assert block["timestamp"].tolist() == [epoch("2024-01-01 00:00:10"), epoch("2024-01-01 00:00:00")]
    assert block["line"].tolist() == [2, 4]
