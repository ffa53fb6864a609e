"""Phone numbers and extensions as the box compares them."""

from __future__ import annotations


def digits(number: str | None) -> str:
    """The digits of a phone number or extension ('+7 (916) 123-45-67' -> '79161234567')."""
    return "".join(ch for ch in number or "" if ch.isdigit())
