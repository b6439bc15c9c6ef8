"""edgepipe.models."""
