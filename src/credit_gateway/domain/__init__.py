"""The rules' vocabulary: frozen values and pure functions, no I/O, no transport, no database."""
