"""Fixtures for the Debian tests: a throwaway signing keyring and synthetic indexes."""

from __future__ import annotations

import shutil

import pytest

from tests.support.debian import TestKeys


@pytest.fixture(scope="session")
def test_keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg and gpgv are needed (apt-get install gpg gpgv)")
    return TestKeys(tmp_path_factory.mktemp("gnupg"))
