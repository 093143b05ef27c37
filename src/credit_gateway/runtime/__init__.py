"""Wiring: settings, logs, TLS, the database threads, the gateway's parts, the server."""
