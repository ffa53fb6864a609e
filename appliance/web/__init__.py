"""The HTTP side of the appliance: the JSON API under ``/api/v1`` (and the panel to come)."""

from .app import create_app

__all__ = ["create_app"]
