"""On-premise call recording and speech analytics appliance."""

__version__ = "0.1.0"
