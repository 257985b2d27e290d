"""The e2e suite's runnable project (an offline env on the Debian base) for the run tests."""

from tests.e2e.test_build import debian_archive, loaded_cleanup, run_project  # noqa: F401
