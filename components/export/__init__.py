"""edgepipe.components.export: the verified on-device bundle."""
from edgepipe.components.export.bundle import export_bundle

__all__ = ["export_bundle"]
