"""The PostgreSQL fixtures of the integration tests, for the adversarial review's tests."""

from tests.integration.conftest import pg_cluster, pg_url  # noqa: F401
