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


def test_a_posted_event_is_in_a_parquet_part_of_the_local_archive_within_10_seconds(local_stack):
    # Given the local stack; When an event is POSTed over HTTP
    response = requests.post(local_stack.url + EVENTS, headers=local_stack.headers, timeout=30,
                             json={"event_type": "agent.registered", "agent_id": "agent-7", "metadata": {"region": "eu-west-1"}})
    assert response.status_code == 201, response.text
    created = response.json()
    prefix = f"events/tenant={local_stack.tenant_id}/date={created['created_at'][:10]}/"
    s3 = boto3.client("s3", endpoint_url=local_stack.dynamodb_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")

    def rows() -> list[dict]:
        found = []
        for item in s3.list_objects_v2(Bucket="maip-archive", Prefix=prefix).get("Contents", []):
            assert item["Key"].rsplit("/", 1)[1].startswith("part-")
            body = s3.get_object(Bucket="maip-archive", Key=item["Key"])["Body"].read()
            found += pq.read_table(io.BytesIO(body)).to_pylist()
        return [r for r in found if r["event_id"] == created["id"]]

    # Then within 10 seconds a part of the tenant's day holds it, with its fields
    deadline = time.monotonic() + 10
    found = rows()
    while not found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = rows()
    assert found, f"no archive part holds {created['id']} after 10 s:\n{local_stack.log_tail()}"
    row = found[0]
    assert (row["event_type"], row["agent_id"], row["created_at"], row["payload"]) == (
        "agent.registered", "agent-7", created["created_at"], '{"region":"eu-west-1"}')
