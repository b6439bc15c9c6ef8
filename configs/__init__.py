"""edgepipe.configs."""
