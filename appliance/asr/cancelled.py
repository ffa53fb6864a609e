"""The one signal a recognizer raises when told to stop (kept apart so that every
recognizer and the service can import it without importing each other)."""


class Cancelled(Exception):
    """Decoding stopped by ``cancel()``: the box is shutting down."""
