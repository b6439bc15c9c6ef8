"""``edgepipe ui``: a browser front end to a pipeline root (runs, DAG, live progress, launch queue, compare, data,
try a bundle), in the spirit of NVIDIA DIGITS. Pages are rendered on the server (Jinja2) with a little plain
JavaScript, so nothing needs a Node build; the templates and assets ship inside the package.

Only ``serve`` lives here; ``app.create_app`` builds the ASGI app (tests use it with FastAPI's TestClient).
"""
from edgepipe.ui.server import serve

__all__ = ["serve"]
