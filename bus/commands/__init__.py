"""The `bus` command's areas of work, one module each."""
