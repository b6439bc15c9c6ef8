"""The registry of ingest sources: which ingest component reads a given ``data.source``.

Why: a template used to pick its ingest with an if-ladder over path suffixes (``.npz`` -> ingest_npz, ``.csv`` ->
ingest_csv, anything else refused with a hand-written list). Each source module now declares what it reads with
:func:`source` (path suffixes, URI schemes such as ``tfds:``, or a folder, optionally only a folder of a certain
layout), so :func:`ingest_for` answers "which ingest for this path?" and the list of accepted sources in an error
message is derived, never written twice. Where the name does not tell (TFRecord shards named
``train.tfrecord-00000-of-00004``), ``data.format`` names the source outright.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from edgepipe.pipeline.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One kind of input: its ingest component and what it reads.

    ``param`` is the component parameter that takes the path (``source``; ``name`` for TFDS), ``suffixes`` the file
    endings it reads (a glob's too), ``schemes`` URI prefixes (``tfds:``) and ``folder`` whether a directory is its
    input (an image folder); ``claims``, for a folder source, says whether a given directory has its layout
    (``images/`` + ``masks/`` for segmentation): a source that claims a folder wins over one that takes any."""

    name: str
    component: object
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    folder: bool = False
    param: str = "source"
    claims: Callable[[str], bool] | None = None

    def arguments(self, path: str) -> dict:
        """The component's keyword argument that names the input: ``{"source": path}`` (``{"name": ...}``)."""
        return {self.param: str(path)}


SOURCES: dict[str, Source] = {}


def source(name: str, *, suffixes: tuple[str, ...] = (), schemes: tuple[str, ...] = (), folder: bool = False,
           param: str = "source", claims: Callable[[str], bool] | None = None):
    """Register the decorated ingest component as source ``name`` (put it above ``@component``)."""

    def register(component):
        if name in SOURCES:
            raise ValueError(f"ingest source '{name}' is registered twice")
        SOURCES[name] = Source(name, component, tuple(s.lower() for s in suffixes), tuple(schemes), folder, param,
                               claims)
        return component

    return register


def describe() -> str:
    """What the registered sources read, for messages: ``.csv, .npz, ... files, tfds:<name>, a folder (images)``."""
    parts = [s for src in SOURCES.values() for s in src.suffixes]
    parts += [f"{scheme}<name>" for src in SOURCES.values() for scheme in src.schemes]
    parts += [f"a folder ({src.name})" for src in SOURCES.values() if src.folder]
    return ", ".join(parts)


def ingest_for(path: str | os.PathLike, where: str = "data.source", format: str | None = None) -> Source:
    """The source that reads ``path``: the one ``format`` names, else a scheme, then a folder (one whose layout
    ``claims`` it before the plain folder source), then the longest matching suffix."""
    text = str(path)
    if format is not None:
        if format not in SOURCES:
            raise ConfigError(f"config key 'data.format': unknown source '{format}' (allowed: {', '.join(SOURCES)})")
        return SOURCES[format]
    by_scheme = [s for s in SOURCES.values() if s.schemes and text.lower().startswith(s.schemes)]
    if by_scheme:
        return by_scheme[0]
    if os.path.isdir(text):
        folders = sorted((s for s in SOURCES.values() if s.folder), key=lambda s: s.claims is None)
        for found in folders:
            if found.claims is None or found.claims(text):
                return found
    matches = [(max(len(x) for x in s.suffixes if text.lower().endswith(x)), s) for s in SOURCES.values()
               if s.suffixes and text.lower().endswith(s.suffixes)]
    if matches:
        return max(matches, key=lambda m: m[0])[1]
    if "://" not in text and not any(c in text for c in "*?[") and not os.path.exists(text):
        raise ConfigError(f"config key '{where}': '{text}' does not exist (a file, glob, folder or tfds:<name>; "
                          f"accepted: {describe()})")
    raise ConfigError(f"config key '{where}': no ingest reads '{text}' (accepted: {describe()}; or name the source "
                      f"with data.format: {', '.join(SOURCES)})")
