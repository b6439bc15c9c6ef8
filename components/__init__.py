"""edgepipe.components."""
