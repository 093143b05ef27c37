"""Adapters: storage (SQLAlchemy), the gRPC edge (grpc.aio), HTTP (aiohttp)."""
