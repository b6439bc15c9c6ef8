"""``edgepipe ui``: start the app with uvicorn, after the safety decisions (address, token, launchable configs).

Any address but a loopback one gets a generated token, printed once with the URL to open; the app refuses every
request without it. Runs can be launched only from YAML files in the project's ``configs/`` (or the directories
named with ``--configs``), fixed here at start. Only the standard library is imported at module level: the CLI
builds its parser from ``add_command`` even where the ``ui`` extra (FastAPI, Jinja2) is not installed.
"""
from __future__ import annotations

import errno
import socket
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
    sock = listen(host, port)  # before the "open" line: the URL printed is this process's, or nothing is
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"edgepipe ui: root {Path(root).resolve()}, launching from "
          f"{', '.join(str(d) for d in app.state.ui.config_dirs)}", flush=True)
    print(f"edgepipe ui: open {url}" + ("  (the token is required: this address is not loopback)" if token else ""),
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def listen(host: str, port: int) -> socket.socket:
    """The bound, listening socket uvicorn is handed: a port in use (another ``edgepipe ui``?) or an address this
    machine does not have is one ``ConfigError`` line (exit 2), not uvicorn's log line and its exit 3."""
    from edgepipe.pipeline.errors import ConfigError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: not an address of this machine ({err.strerror}); pick --host") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use (another edgepipe ui?); pick --port") from None
        raise ConfigError(f"cannot listen on {host} port {port}: {err.strerror}; pick --host/--port") from None
    sock.set_inheritable(True)
    return sock


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
