"""Authentication: the OAuth 2.0 authorization server, access tokens, certificate binding."""
