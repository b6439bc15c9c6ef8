"""The guards on their own (no root needed): which paths an artifact may serve, which hosts need a token."""
from __future__ import annotations

import os

from edgepipe.ui.security import needs_token, new_token, resolve_inside


def test_only_files_inside_the_artifact_directory_resolve(tmp_path):
    artifact = tmp_path / "artifacts" / "node" / "exec" / "model"
    (artifact / "sub").mkdir(parents=True)
    (artifact / "sub" / "a.json").write_text("{}")
    (tmp_path / "metadata.sqlite").write_text("secret")
    os.symlink(tmp_path / "metadata.sqlite", artifact / "link")
    assert resolve_inside(artifact, "sub/a.json") == (artifact / "sub" / "a.json").resolve()
    assert resolve_inside(artifact, "sub/../sub/a.json") == (artifact / "sub" / "a.json").resolve()
    for bad in ("../../../../metadata.sqlite", "link", "/etc/passwd", str(tmp_path / "metadata.sqlite"), "",
                "sub", "sub/a.json\x00.png", "missing.json"):
        assert resolve_inside(artifact, bad) is None, bad


def test_token_needed_off_loopback_only():
    assert not any(needs_token(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.1.1"))
    assert all(needs_token(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))
    tokens = {new_token() for _ in range(5)}
    assert len(tokens) == 5 and all(len(t) >= 24 for t in tokens)
