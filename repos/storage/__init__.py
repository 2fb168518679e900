"""Object storage below the domain: the backend contract, the key and URI layout, the pack writer and reader."""
