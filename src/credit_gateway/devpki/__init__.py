"""The development PKI: a CA, the server's and participants' certificates."""
