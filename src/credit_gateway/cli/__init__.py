"""The operator's command line: `credit-gateway` and its subcommands."""

from credit_gateway.cli.main import main

__all__ = ["main"]
