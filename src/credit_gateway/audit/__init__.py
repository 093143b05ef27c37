"""The append-only decision log: entries now; the RFC 9162 tree and checkpoints build on them."""
