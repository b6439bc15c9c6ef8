"""``edgepipe ui``: start the app with uvicorn, after the safety decisions (address, token, launchable configs).

Any address but a loopback one gets a generated token, printed once with the URL to open; the app refuses every
request without it. Runs can be launched only from YAML files in the project's ``configs/`` (or the directories
named with ``--configs``), fixed here at start. Only the standard library is imported at module level: the CLI
builds its parser from ``add_command`` even where the ``ui`` extra (FastAPI, Jinja2) is not installed.
"""
from __future__ import annotations

import sys
from pathlib import Path


def serve(root: str = ".edgepipe", host: str = "127.0.0.1", port: int = 8765, configs: list[str] | None = None,
          max_upload: int | None = None, token: str | None = None) -> int:
    import uvicorn

    from edgepipe.ui.app import DEFAULT_MAX_UPLOAD, create_app
    from edgepipe.ui.security import needs_token, new_token

    if needs_token(host) and not token:
        token = new_token()
    app = create_app(root, config_dirs=[Path(c) for c in configs or []] or None, token=token,
                     max_upload=max_upload or DEFAULT_MAX_UPLOAD)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"edgepipe ui: root {Path(root).resolve()}, launching from "
          f"{', '.join(str(d) for d in app.state.ui.config_dirs)}", flush=True)
    print(f"edgepipe ui: open {url}" + ("  (the token is required: this address is not loopback)" if token else ""),
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def add_command(sub, port_number) -> None:
    """The ``ui`` subcommand's arguments (the CLI wires it with a few lines)."""
    ui = sub.add_parser("ui", help="browser UI: runs, DAG, live progress, launch queue, compare, try a bundle")
    ui.add_argument("--root", help="pipeline root to show (default: .edgepipe, created if missing)")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: a token is required)")
    ui.add_argument("--port", type=port_number, default=8765)
    ui.add_argument("--configs", action="append", metavar="DIR",
                    help="directory of YAML configs the UI may launch (repeatable; default: the project's configs/)")
    ui.add_argument("--max-upload-bytes", type=int, default=None, help="largest file 'try a bundle' accepts")


def cmd_ui(args) -> int:
    """A ``--root`` given explicitly must exist, as ``runs`` and ``show`` require: a misspelt root would otherwise
    be created and shown empty. The default ``.edgepipe`` is created, so a new project can launch its first run
    from the UI."""
    from edgepipe.pipeline.errors import ConfigError

    for directory in args.configs or []:
        if not Path(directory).is_dir():
            raise ConfigError(f"--configs {directory}: not a directory")
    if args.root is not None and not Path(args.root).exists():
        raise ConfigError(f"no pipeline root at '{args.root}' (no such directory); run 'edgepipe run --root "
                          f"{args.root}' first, or leave --root out to use .edgepipe")
    return serve(args.root or ".edgepipe", args.host, args.port, args.configs, args.max_upload_bytes)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve())
