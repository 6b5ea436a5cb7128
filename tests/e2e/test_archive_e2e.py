"""Issue 19: the archive tier of the local stack. An event POSTed to `maip-events serve` reaches the embedded S3
archive bucket (created from template.yaml) through the same path as deployed: events stream -> dispatcher ->
ArchiveQueue -> archive writer -> a Parquet part under its tenant-day prefix, within 10 seconds."""
from __future__ import annotations

import io
import time

import boto3
import pyarrow.parquet as pq
import pytest
import requests

pytestmark = pytest.mark.e2e

EVENTS = "/v1/observability/events"


def _archived_rows(stack, event_id: str, created_at: str) -> list[dict]:
    """The rows holding `event_id` in the parts of its tenant-day in the stack's archive bucket."""
    s3 = boto3.client("s3", endpoint_url=stack.dynamodb_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    found = []
    prefix = f"events/tenant={stack.tenant_id}/date={created_at[:10]}/"
    for item in s3.list_objects_v2(Bucket="maip-archive", Prefix=prefix).get("Contents", []):
        assert item["Key"].rsplit("/", 1)[1].startswith("part-")
        body = s3.get_object(Bucket="maip-archive", Key=item["Key"])["Body"].read()
        found += pq.read_table(io.BytesIO(body)).to_pylist()
    return [r for r in found if r["event_id"] == event_id]


def _emit(stack, **body) -> dict:
    response = requests.post(stack.url + EVENTS, headers=stack.headers, json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def _wait_for(stack, created: dict, seconds: float) -> list[dict]:
    deadline = time.monotonic() + seconds
    found = _archived_rows(stack, created["id"], created["created_at"])
    while not found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = _archived_rows(stack, created["id"], created["created_at"])
    return found


def test_a_posted_event_is_in_a_parquet_part_of_the_local_archive_within_10_seconds(local_stack):
    # Given the local stack, its consumers warm (the first event also pays for starting worker processes, which
    # on a busy machine takes seconds that say nothing about the archive path)
    assert _wait_for(local_stack, _emit(local_stack, event_type="session.created"), 120), local_stack.log_tail()
    # When an event is POSTed over HTTP
    created = _emit(local_stack, event_type="agent.registered", agent_id="agent-7", metadata={"region": "eu-west-1"})
    # Then within 10 seconds a part of the tenant's day holds it, with its fields
    found = _wait_for(local_stack, created, 10)
    assert found, f"no archive part holds {created['id']} after 10 s:\n{local_stack.log_tail()}"
    row = found[0]
    assert (row["event_type"], row["agent_id"], row["created_at"], row["payload"]) == (
        "agent.registered", "agent-7", created["created_at"], '{"region":"eu-west-1"}')
