"""The Docker-less local stack: `maip-events serve` driven over HTTP and the CLI, and its stream poller.

The first part talks to a real `serve` process like any client would. The second part runs the poller
(`maip_events_local.streams`) against an in-process embedded DynamoDB/SQS with a throwaway consumer
function and a small template, because template.yaml's own consumers deliver to external systems.
"""
from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, SQSEvent

pytestmark = pytest.mark.e2e

EVENTS = "/v1/observability/events"
REPO_ROOT = Path(__file__).resolve().parents[2]


def eventually(check, timeout: float = 30.0, interval: float = 0.1):
    """The first truthy value of check(), or its last value once the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["request_id"]
    return body


def _raw_request(url: str, data: bytes) -> bytes:
    """Sends bytes as they are (no client library fixing them up); returns what the server answered."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


# == the gateway, over HTTP ========================================================================================
def test_an_unknown_path_answers_404_in_the_contract_shape(local_stack):
    # When a client calls a path no route serves
    response = requests.get(f"{local_stack.url}/v1/nothing-here", headers=local_stack.headers, timeout=10)

    # Then it gets the contract's JSON error
    _assert_error(response, 404, "not_found")


def test_a_known_path_with_a_wrong_method_answers_405_with_allow(local_stack):
    # When a client uses a method the path does not support
    response = requests.put(local_stack.url + EVENTS, headers=local_stack.headers, json={}, timeout=10)

    # Then it gets 405 in the contract's shape and the methods it may use
    _assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "POST"}


def test_options_and_head_are_answered_sensibly(local_stack):
    # When a client asks which methods a path supports
    options = requests.options(local_stack.url + EVENTS, timeout=10)

    # Then it gets 204 with Allow
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["Allow"].split(",")} == {"GET", "POST", "OPTIONS"}

    # And HEAD answers like GET, headers only
    head = requests.head(local_stack.url + EVENTS, headers=local_stack.headers, timeout=10)
    get = requests.get(local_stack.url + EVENTS, headers=local_stack.headers, timeout=10)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_a_body_over_the_lambda_limit_answers_413_and_the_stack_keeps_serving(local_stack):
    # Given a body of 7 MB (Lambda accepts 6 MB)
    body = b'{"event_type": "agent.registered", "metadata": {"x": "' + b"a" * (7 * 1024 * 1024) + b'"}}'

    # When it is posted
    response = requests.post(local_stack.url + EVENTS, headers={**local_stack.headers, "Content-Type": "application/json"},
                             data=body, timeout=60)

    # Then it is refused with 413, and the next request is served normally
    _assert_error(response, 413, "payload_too_large")
    assert requests.get(local_stack.url + EVENTS, headers=local_stack.headers, timeout=10).status_code == 200


def test_malformed_requests_get_contract_errors_and_never_break_the_stack(local_stack):
    headers = {**local_stack.headers, "Content-Type": "application/json"}

    # When the query has bad percent-encoding
    bad_query = requests.get(f"{local_stack.url}{EVENTS}?agent_id=%zz%ff&limit=%", headers=headers, timeout=10)
    # Then the request still reaches the API and gets an answer in the contract's shape
    assert bad_query.status_code in (200, 400), bad_query.text
    if bad_query.status_code == 400:
        _assert_error(bad_query, 400, "invalid_request")

    # When the body is not UTF-8
    not_utf8 = requests.post(local_stack.url + EVENTS, headers=headers, data=b"\xff\xfe{}", timeout=10)
    # Then it is a 400
    _assert_error(not_utf8, 400, "invalid_request")

    # When a POST comes without Content-Length, or with a broken one, or the request line is garbage
    host = urlsplit(local_stack.url).netloc
    no_length = _raw_request(local_stack.url, f"POST {EVENTS} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                                              f"X-Tenant-ID: demo\r\nX-API-Key: {local_stack.api_key}\r\n\r\n".encode())
    broken_length = _raw_request(local_stack.url, f"POST {EVENTS} HTTP/1.1\r\nHost: {host}\r\nContent-Length: twelve\r\n\r\n".encode())
    garbage = _raw_request(local_stack.url, b"\x16\x03\x01 nonsense\r\n\r\n")

    # Then each gets an answer (a 4xx for the empty or broken body), never a dropped connection
    assert no_length.startswith(b"HTTP/1.1 4"), no_length[:200]
    assert broken_length.startswith(b"HTTP/1.1 400"), broken_length[:200]
    assert b'"invalid_request"' in broken_length and b'"invalid_request"' in garbage

    # And the stack still serves
    assert requests.get(local_stack.url + EVENTS, headers=local_stack.headers, timeout=10).status_code == 200


def test_a_handler_gets_request_ids_and_the_gateway_never_logs_secrets(local_stack):
    # When an event is emitted with the demo key
    response = requests.post(local_stack.url + EVENTS, headers=local_stack.headers,
                             json={"event_type": "agent.registered", "agent_id": "log-check"}, timeout=10)
    assert response.status_code == 201, response.text

    # Then the response carries the gateway's request id, and the request log names the call but not the key
    assert response.headers["apigw-requestid"]
    log = eventually(lambda: (text := local_stack.log.read_text(errors="replace")) and f"POST {EVENTS} 201" in text and text)
    assert f"POST {EVENTS} 201" in log
    assert local_stack.api_key not in log


def test_an_emitted_event_is_listed(local_stack):
    # Given a fresh tenant with a key made by the CLI
    headers = local_stack.tenant(f"round-trip-{uuid.uuid4().hex[:8]}")

    # When an event is emitted
    emitted = requests.post(local_stack.url + EVENTS, headers=headers, timeout=10, json={
        "event_type": "agent.registered", "agent_id": "agent-1", "metadata": {"region": "eu-west-1", "n": 1.5}})

    # Then it is created, and the list shows it with its payload
    assert emitted.status_code == 201, emitted.text
    created = emitted.json()
    listed = requests.get(local_stack.url + EVENTS, headers=headers, params={"limit": 10}, timeout=10)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 1 and page["next_token"] is None
    assert page["items"] == [{
        "event_id": created["id"], "event_type": "agent.registered", "agent_id": "agent-1", "resource_id": None,
        "severity": "info", "payload": {"region": "eu-west-1", "n": 1.5}, "timestamp": created["created_at"]}]


def test_the_demo_key_and_cli_keys_are_bound_to_their_tenants(local_stack):
    # Given the demo key from `serve` and a key the CLI made for another tenant
    other = local_stack.tenant(f"other-{uuid.uuid4().hex[:8]}")

    # When the demo key is used for the other tenant
    response = requests.get(local_stack.url + EVENTS, headers={**other, "X-API-Key": local_stack.api_key}, timeout=10)

    # Then it is forbidden, while each key works for its own tenant
    assert response.status_code == 403, response.text
    assert requests.get(local_stack.url + EVENTS, headers=other, timeout=10).status_code == 200
    assert requests.get(local_stack.url + EVENTS, headers=local_stack.headers, timeout=10).status_code == 200


# (Concurrent clients losing and duplicating nothing, with every body and the order checked too:
# tests/load/test_load.py, 50 clients against a served stack.)


# == the serve process ============================================================================================
def test_a_busy_port_is_reported_in_one_line(local_stack):
    # When a second stack is started on the API port the first one uses
    port = str(urlsplit(local_stack.url).port)
    done = subprocess.run([sys.executable, "-m", "maip_events_local.cli", "serve", "--port", port, "--dynamodb-port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=local_stack.env)

    # Then it exits with an error that names the port, without a traceback
    assert done.returncode != 0
    assert port in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_sigterm_stops_the_stack_cleanly(spawn_stack):
    # Given a running stack
    stack = spawn_stack()
    assert requests.get(stack.url + EVENTS, headers=stack.headers, timeout=10).status_code == 200

    # When it is sent SIGTERM
    code = stack.stop()

    # Then it exits normally and says so, and it no longer accepts connections
    assert code == 0, stack.log_tail()
    assert "stopped" in stack.log_tail()
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.url + EVENTS, timeout=5)


# == the stream poller against an embedded DynamoDB/SQS ==========================================================
CONSUMER = '''
"""A throwaway consumer: records what it receives, fails the keys it is told to."""
import threading
import time

received = []         # every event, in delivery order
slow = {}             # key -> seconds its first delivery takes
entered_slow = threading.Event()
fail_once = set()     # keys (item pk or message body) that fail on their first delivery
fail_always = set()   # keys that always fail
seen = set()


def lambda_handler(event, context):
    received.append(event)
    failures = []
    for record in event["Records"]:
        if record.get("eventSource") == "aws:sqs":
            key, identifier = record["body"], record["messageId"]
        else:
            key, identifier = record["dynamodb"]["Keys"]["pk"]["S"], record["dynamodb"]["SequenceNumber"]
        first = key not in seen
        seen.add(key)
        if key in slow:
            entered_slow.set()
            time.sleep(slow.pop(key))
        if key in fail_always or (first and key in fail_once):
            failures.append({"itemIdentifier": identifier})
    return {"batchItemFailures": failures}
'''

TEMPLATE = '''
Resources:
  Things{suffix}:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{{AttributeName: pk, AttributeType: S}}]
      KeySchema: [{{AttributeName: pk, KeyType: HASH}}]
      StreamSpecification: {{StreamViewType: NEW_IMAGE}}
  Work{suffix}:
    Type: AWS::SQS::Queue
    Properties: {{VisibilityTimeout: 1}}
  Failures{suffix}:
    Type: AWS::SQS::Queue
  Probe{suffix}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {package}/
      Handler: app.lambda_handler
      Timeout: 5
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Things{suffix}.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: {batch_size}
            FilterCriteria:
              Filters:
                - Pattern: '{{"eventName": ["INSERT"]}}'
            FunctionResponseTypes: [ReportBatchItemFailures]
            MaximumRetryAttempts: 1
            DestinationConfig:
              OnFailure: {{Type: SQS, Destination: !GetAtt Failures{suffix}.Arn}}
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Work{suffix}.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
'''


@pytest.fixture(scope="module")
def embedded_aws():
    """An in-process moto server (DynamoDB, Streams, SQS) that the package's clients talk to."""
    from moto.server import ThreadedMotoServer

    from maip_events import settings

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://127.0.0.1:%d" % server.get_host_and_port()[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAIP_DYNAMODB_ENDPOINT", endpoint)
        patch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        settings.reset()
        yield endpoint
    settings.reset()
    server.stop()


class Probe:
    """One throwaway consumer function wired by a small template: its table, queues, module and poller."""

    def __init__(self, endpoint: str, module, suffix: str):
        from maip_events_local.streams import StreamPoller
        from maip_events_local.template import local_name

        self.module = module
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self.table = local_name(f"Things{suffix}")
        self.work_url = self.sqs.get_queue_url(QueueName=local_name(f"Work{suffix}"))["QueueUrl"]
        self.failures_url = self.sqs.get_queue_url(QueueName=local_name(f"Failures{suffix}"))["QueueUrl"]
        self.poller = StreamPoller(interval=0.05)

    def put(self, *keys: str, **attributes) -> None:
        for key in keys:
            self.dynamodb.put_item(TableName=self.table, Item={"pk": {"S": key}, **attributes})

    def stream_records(self) -> list[dict]:
        return [r for event in self.module.received for r in event["Records"] if r.get("eventSource") == "aws:dynamodb"]

    def delivered(self) -> Counter:
        return Counter(r["dynamodb"]["Keys"]["pk"]["S"] for r in self.stream_records())


@pytest.fixture
def probe(embedded_aws, tmp_path, monkeypatch):
    from maip_events_local.server import create_resources

    suffix = uuid.uuid4().hex[:8].upper()
    package = f"probe_{suffix.lower()}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "app.py").write_text(textwrap.dedent(CONSUMER))
    monkeypatch.syspath_prepend(str(tmp_path))

    def build(batch_size: int = 10) -> Probe:
        template = tmp_path / "template.yaml"
        template.write_text(TEMPLATE.format(suffix=suffix, package=package, batch_size=batch_size))
        monkeypatch.setenv("MAIP_TEMPLATE", str(template))
        create_resources()  # the same code `serve` uses
        return Probe(embedded_aws, importlib.import_module(f"{package}.app"), suffix)

    built: list[Probe] = []
    yield lambda **kwargs: built.append(build(**kwargs)) or built[-1]
    for made in built:
        made.poller.stop()


def test_stream_records_reach_the_consumer_lambda_shaped_filtered_and_batched(probe):
    # Given a consumer with BatchSize 2 and an INSERT-only filter
    p = probe(batch_size=2)
    p.poller.start()

    # When five items are inserted, the first one modified, then a last one inserted
    p.put("k0", "k1", "k2", "k3", "k4", blob={"B": b"\x00\xff"})
    p.put("k0", changed={"S": "yes"})
    p.put("last")

    # Then the inserts arrive in order, in batches of at most 2, and the modification is filtered out
    assert eventually(lambda: p.delivered()["last"] == 1)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in p.stream_records()] == ["k0", "k1", "k2", "k3", "k4", "last"]
    assert all(1 <= len(event["Records"]) <= 2 for event in p.module.received)

    # And each record has the shape Lambda delivers
    stream_arn = p.dynamodb.describe_table(TableName=p.table)["Table"]["LatestStreamArn"]
    record = p.stream_records()[0]
    assert {k: record[k] for k in ("eventName", "eventVersion", "eventSource", "awsRegion", "eventSourceARN")} == {
        "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn}
    assert record["eventID"]
    assert set(record["dynamodb"]) >= {"ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber", "SizeBytes",
                                       "StreamViewType"}
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AP8="}  # binary as base64 text, like Lambda
    json.dumps(p.module.received)  # the events are plain JSON, as Lambda passes them
    parsed = next(iter(DynamoDBStreamEvent(p.module.received[0]).records))
    assert parsed.dynamodb.new_image["pk"] == "k0"
    assert parsed.dynamodb.approximate_creation_date_time == record["dynamodb"]["ApproximateCreationDateTime"]


def test_a_reported_failure_is_redelivered_from_that_record(probe):
    # Given a consumer that fails k2 on its first delivery
    p = probe()
    p.module.fail_once.add("k2")

    # When five items are inserted and the poller runs
    p.put("k0", "k1", "k2", "k3", "k4")
    p.poller.start()

    # Then every record is processed; records before the failure are not redelivered, k2 is delivered twice
    assert eventually(lambda: p.delivered()["k2"] == 2 and all(p.delivered()[k] >= 1 for k in ("k3", "k4")))
    delivered = p.delivered()
    assert (delivered["k0"], delivered["k1"], delivered["k2"]) == (1, 1, 2)
    retry = next(event for event in p.module.received[1:] if event["Records"][0]["dynamodb"]["Keys"]["pk"]["S"] == "k2")
    assert retry["Records"][0]["dynamodb"]["Keys"]["pk"]["S"] == "k2"  # the retry starts at the failed record


def test_a_record_that_keeps_failing_goes_to_the_on_failure_destination(probe):
    # Given a consumer that always fails "bad" (the template allows 1 retry)
    p = probe()
    p.module.fail_always.add("bad")
    p.poller.start()

    # When "bad" is inserted, and once it has been tried, "good"
    p.put("bad")
    assert eventually(lambda: p.delivered()["bad"] >= 1)
    p.put("good")

    # Then "good" is still delivered: the stream does not stay blocked
    assert eventually(lambda: p.delivered()["good"] == 1)
    assert p.delivered()["bad"] == 2  # the first try and one retry

    # And the on-failure queue received Lambda's record of the abandoned batch
    messages = eventually(lambda: p.sqs.receive_message(QueueUrl=p.failures_url, WaitTimeSeconds=1).get("Messages"))
    assert messages, "nothing reached the on-failure destination"
    info = json.loads(messages[0]["Body"])
    bad_sequence = next(r["dynamodb"]["SequenceNumber"] for r in p.stream_records() if r["dynamodb"]["Keys"]["pk"]["S"] == "bad")
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["DDBStreamBatchInfo"]["startSequenceNumber"] == bad_sequence
    assert info["DDBStreamBatchInfo"]["batchSize"] == 1


def test_a_stopped_poller_resumes_where_it_left_off(probe):
    # Given a running poller that has delivered one record
    p = probe()
    p.poller.start()
    p.put("before")
    assert eventually(lambda: p.delivered()["before"] == 1)

    # When it is stopped, records are written, and it is started again
    p.poller.stop()
    assert not p.poller.running
    p.put("while-stopped-1", "while-stopped-2")
    assert "while-stopped-1" not in p.delivered()  # nothing polls while stopped
    p.poller.start()

    # Then the records written meanwhile are delivered, and nothing is delivered twice
    assert eventually(lambda: p.delivered()["while-stopped-2"] == 1)
    assert p.delivered() == Counter({"before": 1, "while-stopped-1": 1, "while-stopped-2": 1})


def test_a_restart_during_a_slow_batch_neither_loses_nor_duplicates(probe):
    # Given a poller delivering a batch that takes a while
    p = probe()
    p.module.slow["slow"] = 1.0
    p.poller.start()
    p.put("slow")
    assert p.module.entered_slow.wait(30)

    # When it is told to stop and, before that stop has finished, to start again (SIGUSR1 then SIGUSR2)
    stopping = threading.Thread(target=p.poller.stop)
    stopping.start()
    assert eventually(lambda: not p.poller.running)
    p.poller.start()
    stopping.join()
    p.put("after-1", "after-2")

    # Then it runs, and every record is delivered exactly once
    assert p.poller.running
    assert eventually(lambda: p.delivered()["after-2"] == 1)
    assert p.delivered() == Counter({"slow": 1, "after-1": 1, "after-2": 1})


def test_queue_messages_reach_the_consumer_and_only_failures_come_back(probe):
    # Given a consumer of a queue (visibility timeout 1 s) that fails "retry-me" once
    p = probe()
    p.module.fail_once.add("retry-me")
    p.poller.start()

    # When three messages are sent
    for body in ("first", "retry-me", "last"):
        p.sqs.send_message(QueueUrl=p.work_url, MessageBody=body,
                           MessageAttributes={"kind": {"DataType": "String", "StringValue": "probe"}})

    def sqs_records() -> list[dict]:
        return [r for event in p.module.received for r in event["Records"] if r.get("eventSource") == "aws:sqs"]

    # Then the failed message comes back after the visibility timeout, and the others are not redelivered
    assert eventually(lambda: [r["body"] for r in sqs_records()].count("retry-me") == 2)
    assert Counter(r["body"] for r in sqs_records()) == Counter({"first": 1, "retry-me": 2, "last": 1})
    retried = [r for r in sqs_records() if r["body"] == "retry-me"]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in retried] == ["1", "2"]

    # And the records have the shape Lambda delivers
    queue_arn = p.sqs.get_queue_attributes(QueueUrl=p.work_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    record = sqs_records()[0]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", queue_arn, "us-east-1")
    assert record["messageId"] and record["receiptHandle"] and record["md5OfBody"]
    assert record["messageAttributes"]["kind"]["stringValue"] == "probe"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert next(iter(SQSEvent(p.module.received[0]).records)).body == record["body"]

    # And the queue ends empty: processed messages were deleted
    def queue_empty() -> bool:
        attributes = p.sqs.get_queue_attributes(QueueUrl=p.work_url, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"

    assert eventually(queue_empty)


def test_a_stream_poller_reads_the_template_of_the_project():
    # The project's own consumers are found from template.yaml (their delivery is covered by the webhook/SIEM suites)
    from maip_events_local.streams import StreamPoller

    poller = StreamPoller()
    assert {(c.function.logical_id, c.kind) for c in poller.consumers} >= {("DispatchFunction", "DynamoDB"),
                                                                          ("WebhookDeliveryFunction", "SQS"),
                                                                          ("SiemStreamFunction", "SQS")}
    # And a queue source with MaximumConcurrency gets several local instances, a stream source one
    slots = [(c.function.logical_id, c.kind, n) for c, n in poller._slots]
    assert ("WebhookDeliveryFunction", "SQS", 1) in slots and ("DispatchFunction", "DynamoDB", 1) not in slots
    assert not poller.running

