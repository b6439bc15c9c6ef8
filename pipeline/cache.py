"""Cache keys: component code version + parameters + input fingerprints (as in TFX and Hamilton).

Two executions with the same key would produce interchangeable artifacts, so the second one is skipped and the
first one's outputs are reused. Parameters that name external files (``InputPath``) contribute the files' content,
not their names, so editing a CSV in place re-runs ingest; parameters that only choose how work runs
(``execution_params``: the Beam runner, the distribution strategy) are left out.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from edgepipe.pipeline.component import Component

# Files larger than this are fingerprinted by size and modification time instead of their bytes.
FULL_HASH_LIMIT = 256 * 1024 * 1024


def cache_key(component: Component, params: Mapping[str, Any], input_fingerprints: Mapping[str, str]) -> str:
    keyed_params = {}
    for name, value in sorted(params.items()):
        if name in component.execution_params:
            continue
        keyed_params[name] = value
        if name in component.path_params and value:
            keyed_params[f"{name}#content"] = path_fingerprint(value)
    payload = {
        "component": component.name,
        "code": component.code_version,
        "params": keyed_params,
        "inputs": dict(sorted(input_fingerprints.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def path_fingerprint(value: str | os.PathLike | list) -> str:
    """Content hash of the files a path, directory or glob names (sorted, names included)."""
    if isinstance(value, (list, tuple)):
        return hashlib.sha256("".join(path_fingerprint(v) for v in value).encode()).hexdigest()
    pattern = str(value)
    matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
    files: list[Path] = []
    for match in matches:
        path = Path(match)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        stat = path.stat()
        if stat.st_size > FULL_HASH_LIMIT:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            continue
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    if not files:
        digest.update(b"<missing>" + pattern.encode())
    return digest.hexdigest()
