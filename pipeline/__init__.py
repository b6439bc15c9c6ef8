"""edgepipe.pipeline."""
