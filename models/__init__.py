"""edgepipe.models: model families (by name), the custom objects to reload them, distribution strategies.

Import the submodules you need; this package imports nothing heavy so configs can list families cheaply.
"""
from edgepipe.models.custom_objects import custom_object_scope
from edgepipe.models.registry import available, build, register
from edgepipe.pipeline.artifacts import register_keras_scope

register_keras_scope(custom_object_scope)  # Model.load_keras opens saved models with edgepipe's custom objects

__all__ = ["available", "build", "register"]
