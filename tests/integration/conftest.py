"""Integration fixtures: in-process moto with every table built from template.yaml (never retyped)."""
from __future__ import annotations

import os

import boto3
import pytest
from moto import mock_aws

from maip_events import settings


@pytest.fixture(scope="session", autouse=True)
def fast_moto():
    """moto_patches for every test (the local stack always runs with them; same semantics, no O(table) copies per
    transaction): without this, a test ran fast or slow depending on whether an earlier one had installed them."""
    from maip_events_local import moto_patches

    moto_patches.install()


@pytest.fixture(scope="session")
def dynamodb_client():
    """One boto3 DynamoDB client for the session: building a client costs ~0.15 s (every test would pay it), and
    moto intercepts a client's requests whenever a mock is active, whenever the client was made."""
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def aws(monkeypatch, dynamodb_client):
    """A fresh moto account with the template's tables; yields the DynamoDB client."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("MAIP_DYNAMODB_ENDPOINT", "MAIP_LOCAL", "MAIP_JWT_SECRET", "MAIP_JWT_JWKS_URL", "MAIP_JWT_ISSUER", "MAIP_JWT_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    # Fixed-date data (siem_harness.T0 = 2026-11-23 and the windows written out around it) stays in the hot tier
    # whatever today is; tests about the tiers set them per tenant, or this default themselves.
    monkeypatch.setenv("MAIP_HOT_DAYS_DEFAULT", "365")
    from maip_events_local.template import table_definitions

    with mock_aws():
        settings.reset()
        client = dynamodb_client
        for definition in table_definitions():
            definition = {k: v for k, v in definition.items() if k != "TimeToLiveSpecification"}
            client.create_table(**definition)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=settings.get_settings().archive_bucket)  # the archive tier
        yield client
    settings.reset()


@pytest.fixture
def tenant_key(aws):
    """An API key with every scope for tenant `t1`."""
    from maip_events.auth.keys import create_api_key

    return create_api_key("t1", ["*"], "test")


@pytest.fixture
def headers(tenant_key):
    return {"X-API-Key": tenant_key["api_key"], "X-Tenant-ID": "t1", "Content-Type": "application/json"}



@pytest.fixture
def log(aws, monkeypatch):
    """The integrity log's queues and signing key of template.yaml (as `maip-events serve` creates them), sealing
    with no grace period."""
    from maip_events.integrity import signing
    from maip_events_local.server import create_kms_keys
    from siem_harness import create_queues

    monkeypatch.setenv("MAIP_SEAL_GRACE_SECONDS", "0")
    monkeypatch.setenv("MAIP_SEAL_INTERVAL_SECONDS", "0")
    create_queues()
    create_kms_keys()
    signing._jwk.cache_clear()  # a new key per test under the same alias (a process keeps its key deployed)
    return aws
