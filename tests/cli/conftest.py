from tests.flows.conftest import env  # noqa: F401  (the same engine fixture the flow tests use)
