"""Installed versions are at or above the releases that fixed recent CVEs (issue 4)."""

from importlib.metadata import version

import pytest
from packaging.version import Version

FLOORS = {"python-multipart": "0.0.32", "starlette": "1.3.1", "pillow": "13.0.0"}


@pytest.mark.parametrize("package,floor", FLOORS.items())
def test_cve_floor(package, floor):
    assert Version(version(package)) >= Version(floor), f"{package} {version(package)} < {floor}"
