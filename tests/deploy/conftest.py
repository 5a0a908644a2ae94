"""Deploy tests validate deploy/ offline, with tools in an environment of their own (harness/deploy_tools)."""

from __future__ import annotations

import pytest

from harness.deploy_tools import DeployTools, deploy_tools


@pytest.fixture(scope="session")
def tools() -> DeployTools:
    return deploy_tools()
