"""edgepipe.models: model families (by name), the custom objects to reload them, distribution strategies.

Import the submodules you need; this package imports nothing heavy so configs can list families cheaply.
"""
from edgepipe.models.registry import available, build, register

__all__ = ["available", "build", "register"]
