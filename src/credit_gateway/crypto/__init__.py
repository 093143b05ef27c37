"""Cryptographic building blocks: the master secret, envelope encryption, ES256 keys."""
