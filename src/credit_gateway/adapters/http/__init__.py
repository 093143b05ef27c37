"""The OAuth 2.0 authorization server (authlib) and its HTTPS transport (aiohttp)."""
