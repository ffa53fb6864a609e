"""Fixtures of the panel tests: a panel over the demo's calls, an admin signed in, a user of
any role. Loaded for every test module by conftest.py (``pytest_plugins``)."""

from __future__ import annotations

import pytest

from paneldata import PASSWORD, Box, login


@pytest.fixture
def box(tmp_path):
    """A panel over a store holding the demo's calls."""
    b = Box(tmp_path)
    b.add_calls()
    yield b
    b.close()


@pytest.fixture
def admin(box):
    """A browser session signed in as the first admin."""
    client = box.app.test_client()
    box.setup_admin(client)
    return client


def signed_in_as(box, role: str):
    """A new user of ``role`` (named role + '1'), signed in."""
    box.app.extensions["users"].create(role + "1", PASSWORD, role)
    client = box.app.test_client()
    assert login(client, role + "1").status_code == 302
    return client
