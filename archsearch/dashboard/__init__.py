"""A read-only web dashboard over the results database: `create_app(storage_url)` builds the ASGI app."""

from .app import create_app

__all__ = ["create_app"]
