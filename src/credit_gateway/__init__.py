"""credit_gateway: the data-sharing gateway of a provincial Social Credit Information Center."""

__version__ = "0.1.0"
