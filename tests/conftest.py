"""Shared test setup: AWS calls can only ever reach moto (fake credentials, fixed region), never a real account.

Suite-specific fixtures live in tests/unit, tests/integration, tests/e2e and tests/infra conftest files.
"""
import os
from pathlib import Path

import pytest

# Fake credentials win over whatever the shell has: a test must never sign a request with real ones.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
for _name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_name, None)
for _name, _value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # moto + recent botocore: DynamoDB Streams calls need it
    "SAM_CLI_TELEMETRY": "0",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_name, _value)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The project root (where template.yaml and pyproject.toml are)."""
    return REPO_ROOT
