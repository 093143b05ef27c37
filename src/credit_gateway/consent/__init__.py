"""Consent: written authorizations, their tokens and their lifecycle (Art 19-20)."""
