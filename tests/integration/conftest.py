"""Fixtures every integration test may use."""

from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401
