"""One place for split rules: by fraction, by hash of a key column, by time (series).

``split`` parameters look like ``{"train": 0.8, "eval": 0.1, "test": 0.1}`` (fractions, >= 0, summing to 1) or
``{"method": "hash", "key": "user_id", "train": 0.8, "eval": 0.2}``.

* **fraction** (rows/records): each row goes to the split whose cumulative-fraction interval holds a 64-bit hash of
  the row's *identity*: its text and file name for CSV rows (identical rows share a split), file name and record
  or row number for TFRecord/npz, relative path for images. Deterministic, stable across runs, runners and how
  files are cut into ranges, and needing no global count or shuffle; the fractions are met in expectation (within
  a few percent on a few hundred rows), not exactly.
* **hash**: the hash of the *value* of the key column (or feature) decides, so every row sharing a key lands in one
  split (no leakage of a user, a patient, a machine across splits).
* **time** (series): the first fraction of each series' steps in time order is train, and so on: exact counts, no
  future in training. Used by ``ingest_timeseries``.

Split order is canonical, never the mapping's key order: a compiled Kubeflow spec (YAML/JSON structs, ``sort_keys``)
hands the split back as ``{eval, test, train}``, and taking that order would put train *last* in time (training on
the future) and move every fraction interval. So :func:`parse_split` orders names train, then eval/validation
(``eval``, ``validation``, ``val``, ``valid``, ``dev``), then any other names alphabetically, then test last, whatever
order the dict comes in: the earliest steps always train, the latest always test.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgepipe.pipeline.errors import ConfigError

METHODS = ("fraction", "hash", "time")
_RANK = {"train": 0, "eval": 1, "validation": 1, "val": 1, "valid": 1, "dev": 1, "test": 3}


def canonical_order(names) -> list[str]:
    """Split names in the fixed order the module docstring gives (train, eval/validation, others a-z, test)."""
    return sorted(names, key=lambda name: (_RANK.get(name, 2), name))
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class SplitSpec:
    names: tuple[str, ...]
    fractions: tuple[float, ...]
    method: str = "fraction"
    key: str | None = None

    @property
    def bounds(self) -> np.ndarray:
        """Cumulative upper bounds of each split in [0, 1]."""
        cum = np.cumsum(self.fractions)
        cum[-1] = 1.0
        return cum

    def to_json(self) -> dict:
        out = dict(zip(self.names, self.fractions))
        if self.method != "fraction":
            out["method"] = self.method
        if self.key:
            out["key"] = self.key
        return out


def parse_split(split: dict | None, default: dict[str, float], allowed: tuple[str, ...] = ("fraction", "hash"),
                where: str = "split") -> SplitSpec:
    """Validate a split parameter into a :class:`SplitSpec` (ConfigError with one line when wrong)."""
    raw = dict(split or default)
    method = str(raw.pop("method", "time" if "time" in allowed and "fraction" not in allowed else "fraction"))
    key = raw.pop("key", None)
    if method not in allowed:
        raise ConfigError(f"{where}: unknown method '{method}' (allowed here: {', '.join(allowed)})")
    if method == "hash" and not key:
        raise ConfigError(f"{where}: method 'hash' needs a 'key' (the column or feature to hash)")
    try:
        fractions = {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: fractions must be numbers, got {raw}") from None
    if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ConfigError(f"{where}: split fractions must be >= 0 and sum to 1, got {fractions}")
    names = tuple(canonical_order(fractions))
    return SplitSpec(names, tuple(fractions[name] for name in names), method, key)


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, vectorized: a well-mixed uint64 per input uint64."""
    z = np.asarray(values, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def hash_text(text: str) -> int:
    """Stable 64-bit hash of a string (not Python's salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


def hash_values(values) -> np.ndarray:
    """Stable uint64 hashes of key values (strings, numbers): each distinct value hashed once. Numbers hash by
    their text form in ``repr`` of float64 for floats and int for ints, so 3 and 3.0 differ only by type."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return mix64(array.astype(np.int64).view(np.uint64) ^ np.uint64(0x5157E5))
    uniques, inverse = np.unique(array.astype(str) if array.dtype.kind != "f" else array, return_inverse=True)
    hashed = np.array([hash_text(repr(float(u)) if array.dtype.kind == "f" else str(u)) for u in uniques.tolist()],
                      dtype=np.uint64)
    return hashed[inverse.reshape(-1)]


def identity_hash(source: str, offset: int, index: np.ndarray) -> np.ndarray:
    """Hashes of row identities (source name, byte offset of its block, index/line within it)."""
    base = np.uint64(hash_text(f"{source}@{int(offset)}"))
    return mix64(np.asarray(index, np.int64).view(np.uint64) ^ base)


def assign(spec: SplitSpec, hashes: np.ndarray) -> np.ndarray:
    """Split index of each row from uint64 hashes (uniform in [0, 1) from the top 53 bits)."""
    unit = (np.asarray(hashes, np.uint64) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.minimum(np.searchsorted(spec.bounds, unit, side="right"), len(spec.names) - 1)


def time_bounds(n: int, fractions) -> np.ndarray:
    """Step boundaries of a time split of n ordered steps: split i is ``[bounds[i], bounds[i+1])``."""
    bounds = np.round(np.cumsum([0.0, *fractions]) * n).astype(int)
    bounds[-1] = n
    return bounds
