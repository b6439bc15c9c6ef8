"""edgepipe.runtime."""
