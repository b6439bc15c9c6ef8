"""Cache keys: component code version + parameters + input fingerprints (as in TFX and Hamilton).

Two executions with the same key would produce interchangeable artifacts, so the second one is skipped and the
first one's outputs are reused. Parameters that name external files (``InputPath``) contribute the files' content,
not their names, so editing a CSV in place re-runs ingest; parameters that only choose how work runs
(``execution_params``: the Beam runner, the distribution strategy) are left out.

A key only says the *inputs* match; a hit is reused only if its artifacts still hold what was registered
(:func:`artifact_damage`): a flipped byte in a cached ``.tflite`` or a truncated TFRecord would otherwise be
shipped, or fail every later run until ``--no-cache``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from edgepipe.pipeline.artifacts import Artifact
from edgepipe.pipeline.component import Component, param_json

# Files larger than this are fingerprinted by size and modification time instead of their bytes.
FULL_HASH_LIMIT = 256 * 1024 * 1024


def cache_key(component: Component, params: Mapping[str, Any], input_fingerprints: Mapping[str, str]) -> str:
    keyed_params = {}
    for name, value in sorted(params.items()):
        if name in component.execution_params:
            continue
        keyed_params[name] = param_json(value)  # a pydantic section: its class and sorted fields
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


def file_signature(uri: str | os.PathLike) -> dict[str, list[int]]:
    """``{relative file name: [size, mtime_ns]}`` of an artifact directory: recorded at registration, so a reuse
    check that finds it unchanged can skip hashing the content (the cheap path of :func:`artifact_damage`)."""
    root = Path(uri)
    signature = {}
    for path in Artifact(root).files():
        stat = path.stat()
        signature[path.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return signature


def artifact_damage(uri: str | os.PathLike, fingerprint: str,
                    signature: dict[str, list[int]] | None) -> tuple[str | None, dict[str, list[int]]]:
    """``(what changed, current signature)`` of a registered artifact; ``None`` when it is intact.

    Same names, sizes and modification times as registered: intact without reading a byte. A file missing,
    added or resized: damaged without hashing. Only a file whose time alone changed (touched, copied without
    ``-p``) costs a full content hash, compared with the fingerprint registered with the artifact.
    """
    root = Path(uri)
    if not root.is_dir():
        return "the artifact folder is missing", {}
    current = file_signature(root)
    if signature is not None and current == signature:
        return None, current
    if signature is not None:
        names = sorted(set(signature) | set(current))
        missing = [n for n in names if n not in current]
        added = [n for n in names if n not in signature]
        resized = [n for n in names if n in current and n in signature and current[n][0] != signature[n][0]]
        changed = missing or added or resized
        if changed:
            what = "missing" if missing else "added" if added else "changed size"
            return f"file {changed[0]} {what}" + (f", {len(changed) - 1} more" if len(changed) > 1 else ""), current
        touched = [n for n in names if current[n] != signature[n]]
    else:  # registered before signatures were recorded
        touched = sorted(current)
    if Artifact(root).content_fingerprint() == fingerprint:
        return None, current
    if len(touched) == 1 or signature is None:
        return (f"file {touched[0]} changed" if len(touched) == 1 else "its content changed"), current
    return f"one of {len(touched)} modified files ({', '.join(touched[:3])}) changed", current
