"""Find a run's report among its executions' artifacts, and open it when a browser can be shown.

Used by ``edgepipe show RUN --open``: the path is always printed (so it works over SSH and in scripts); a browser
is only started where a display exists, since ``webbrowser`` would otherwise fall back to a text browser.
"""
from __future__ import annotations

import os
import sys
import webbrowser
from pathlib import Path
from typing import Any

from edgepipe.pipeline.artifacts import Report


def find_report(executions: list[dict[str, Any]]) -> Path | None:
    """``report.html`` of the last Report artifact among the run's executions, if it exists on disk."""
    for ex in reversed(executions):
        for artifact in ex.get("artifacts") or []:
            if artifact.get("type") == Report.type_name:
                path = Path(artifact["uri"]) / Report.filename
                if path.is_file():
                    return path
    return None


def can_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_report(path: Path) -> bool:
    """Open ``path`` in a browser if a display is available; True if one was asked to."""
    if not can_display():
        return False
    try:
        return bool(webbrowser.open(path.resolve().as_uri()))
    except webbrowser.Error:
        return False
