"""The local stack reads template.yaml (tables, queues, routes, consumers) and builds API Gateway v2 events.

Expected values come from template.yaml itself (read here with a plain YAML pass), never retyped.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from maip_events import settings
from maip_events_local import template
from maip_events_local.gateway import build_event, lambda_response

REPO_ROOT = Path(__file__).resolve().parents[2]


class _AnyTagLoader(yaml.SafeLoader):
    """Reads the template independently of the code under test: any !Tag becomes {"tag": value}."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: {
    suffix: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)})


@pytest.fixture(scope="module")
def raw_template() -> dict:
    with open(REPO_ROOT / "template.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_AnyTagLoader)  # noqa: S506 - SafeLoader subclass


def _resources(raw: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in raw["Resources"].items() if r["Type"] == kind}


def _use_template(monkeypatch, tmp_path: Path, text: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("MAIP_TEMPLATE", str(path))


# -- tables and queues ------------------------------------------------------------------------------------------
def test_every_table_of_the_template_becomes_create_table_arguments(raw_template, monkeypatch):
    # Given the template's tables and no table names in the environment
    for var in settings.TABLE_DEFAULTS:
        monkeypatch.delenv(var, raising=False)
    tables = _resources(raw_template, "AWS::DynamoDB::Table")
    env = raw_template["Globals"]["Function"]["Environment"]["Variables"]
    name_of = {value["Ref"]: settings.TABLE_DEFAULTS[var] for var, value in env.items()
               if isinstance(value, dict) and value.get("Ref") in tables}

    # When the local stack reads them
    definitions = {d["TableName"]: d for d in template.table_definitions()}

    # Then each table has its default local name, keys, indexes, billing, streams and TTL as declared
    assert set(definitions) == {name_of[logical_id] for logical_id in tables}
    for logical_id, resource in tables.items():
        props, definition = resource["Properties"], definitions[name_of[logical_id]]
        assert definition["KeySchema"] == props["KeySchema"]
        assert definition["AttributeDefinitions"] == props["AttributeDefinitions"]
        assert definition.get("GlobalSecondaryIndexes") == props.get("GlobalSecondaryIndexes")
        assert definition["BillingMode"] == props["BillingMode"]
        if "StreamSpecification" in props:
            assert definition["StreamSpecification"] == {"StreamEnabled": True, **props["StreamSpecification"]}
        else:
            assert "StreamSpecification" not in definition
        assert definition.get("TimeToLiveSpecification") == props.get("TimeToLiveSpecification")


def test_table_and_queue_names_follow_the_environment(monkeypatch):
    # Given an environment that renames the events table
    monkeypatch.setenv("MAIP_EVENTS_TABLE", "my-events")

    # When the definitions are read
    names = {d["TableName"] for d in template.table_definitions()}

    # Then the local table carries that name
    assert "my-events" in names
    assert template.local_name("EventsTable") == "my-events"


def test_queues_and_their_dead_letter_targets_come_from_the_template(raw_template):
    # Given the template's queues
    queues = _resources(raw_template, "AWS::SQS::Queue")

    # When the local stack reads them
    definitions = {q["logical_id"]: q for q in template.queue_definitions()}

    # Then every queue is there, and a redrive policy points at another queue of the template
    assert set(definitions) == set(queues)
    for logical_id, resource in queues.items():
        redrive = resource.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            assert definitions[logical_id]["dead_letter_target"] == redrive["deadLetterTargetArn"]["GetAtt"].split(".")[0]
            assert definitions[logical_id]["max_receive_count"] == redrive["maxReceiveCount"]
        else:
            assert definitions[logical_id]["dead_letter_target"] is None


# -- routes -----------------------------------------------------------------------------------------------------
def test_every_http_api_event_becomes_a_route_to_an_importable_handler(raw_template):
    # Given every HttpApi event of every function in the template
    declared = set()
    for resource in _resources(raw_template, "AWS::Serverless::Function").values():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                declared.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))

    # When the routes are read
    routes = template.http_routes()

    # Then each one is a route, and its handler module exists in functions/<dir>/app.py
    assert {(r.method, r.path) for r in routes} == declared
    for route in routes:
        assert re.fullmatch(r"functions\.\w+\.app", route.function.module)
        assert route.function.handler == "lambda_handler"
        assert importlib.util.find_spec(route.function.module) is not None
        assert route.function.timeout > 0


def test_emit_and_list_share_a_path_and_differ_by_method():
    # When the events path is matched
    by_method = {r.method: r for r in template.http_routes() if r.match("/v1/observability/events") is not None}

    # Then POST goes to the emit handler and GET to the list handler
    assert by_method["POST"].function.module == "functions.emit.app"
    assert by_method["GET"].function.module == "functions.list.app"


def test_path_parameters_colons_and_greedy_paths_match_like_api_gateway(monkeypatch, tmp_path):
    # Given a template with a literal, a colon, a {param} and a {proxy+} route
    _use_template(monkeypatch, tmp_path, """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/emit/
      Handler: app.lambda_handler
      Events:
        Batch: {Type: HttpApi, Properties: {Path: "/v1/observability/events:batch", Method: post}}
        Literal: {Type: HttpApi, Properties: {Path: /v1/items/export, Method: GET}}
        One: {Type: HttpApi, Properties: {Path: "/v1/items/{item_id}", Method: GET}}
        Rest: {Type: HttpApi, Properties: {Path: "/v1/files/{proxy+}", Method: GET}}
""")
    routes = template.http_routes()

    def route_for(path: str):
        return next(((r.method, r.path, r.match(path)) for r in routes if r.match(path) is not None), None)

    # Then the colon path matches only itself, methods are upper-cased, and parameters are extracted
    assert route_for("/v1/observability/events:batch") == ("POST", "/v1/observability/events:batch", {})
    assert route_for("/v1/observability/eventsXbatch") is None
    assert route_for("/v1/items/export") == ("GET", "/v1/items/export", {})  # the literal route wins
    assert route_for("/v1/items/maip-whk:01ABC") == ("GET", "/v1/items/{item_id}", {"item_id": "maip-whk:01ABC"})
    assert route_for("/v1/items/a/b") is None  # a {param} never spans a slash
    assert route_for("/v1/files/a/b/c.txt") == ("GET", "/v1/files/{proxy+}", {"proxy": "a/b/c.txt"})


def test_timeout_comes_from_the_function_or_globals(raw_template):
    # Given the global timeout and the functions that override it
    global_timeout = raw_template["Globals"]["Function"]["Timeout"]
    functions = _resources(raw_template, "AWS::Serverless::Function")

    # Then every route's function has its own timeout, or the global one
    for route in template.http_routes():
        props = functions[route.function.logical_id]["Properties"]
        assert route.function.timeout == props.get("Timeout", global_timeout)


# -- stream and queue consumers ---------------------------------------------------------------------------------
def test_stream_consumers_point_at_tables_with_streams_and_parse_their_filters(raw_template):
    # Given the template's tables with streams
    streamed = {name for name, r in _resources(raw_template, "AWS::DynamoDB::Table").items()
                if "StreamSpecification" in r["Properties"]}
    queues = set(_resources(raw_template, "AWS::SQS::Queue"))

    # When the consumers are read
    consumers = template.stream_consumers()

    # Then each reads a streamed table or a queue of the template, with its filters as JSON objects
    for consumer in consumers:
        if consumer.kind == "DynamoDB":
            assert consumer.source in streamed
            assert all(isinstance(f, dict) for f in consumer.filters)
        else:
            assert consumer.kind == "SQS" and consumer.source in queues
        assert consumer.batch_size >= 1
        assert consumer.on_failure is None or consumer.on_failure in queues


def test_consumer_settings_are_read_from_event_properties(monkeypatch, tmp_path):
    # Given a template with one stream consumer and one queue consumer
    _use_template(monkeypatch, tmp_path, """
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Work:
    Type: AWS::SQS::Queue
  Failures:
    Type: AWS::SQS::Queue
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/consumer/
      Handler: app.handle
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Things.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 7
            FilterCriteria: {Filters: [{Pattern: '{"eventName": ["INSERT", "MODIFY"]}'}]}
            FunctionResponseTypes: [ReportBatchItemFailures]
            MaximumRetryAttempts: 2
            DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}}
        Queue:
          Type: SQS
          Properties: {Queue: !GetAtt Work.Arn, BatchSize: 3, ScalingConfig: {MaximumConcurrency: 3}}
""")

    # When the consumers are read
    stream, queue = sorted(template.stream_consumers(), key=lambda c: c.kind)

    # Then every setting is taken from the template
    assert (stream.kind, stream.source, stream.batch_size, stream.max_retries) == ("DynamoDB", "Things", 7, 2)
    assert stream.filters == ({"eventName": ["INSERT", "MODIFY"]},)
    assert stream.report_failures and stream.on_failure == "Failures"
    assert (stream.function.module, stream.function.handler) == ("functions.consumer.app", "handle")
    assert (queue.kind, queue.source, queue.batch_size, queue.report_failures) == ("SQS", "Work", 3, False)
    assert (queue.max_concurrency, stream.max_concurrency) == (3, 1)


def test_short_tags_become_their_long_forms(monkeypatch, tmp_path):
    # Given a template using every CloudFormation short tag
    _use_template(monkeypatch, tmp_path, """
Values:
  ref: !Ref Table
  getatt: !GetAtt Table.StreamArn
  getatt_list: !GetAtt [Queue, Arn]
  sub: !Sub "${AWS::StackName}-x"
  join: !Join [",", [a, b]]
  select: !Select [0, !GetAZs ""]
  split: !Split [",", "a,b"]
  if: !If [IsProd, 1, 2]
  equals: !Equals [a, b]
  not: !Not [!Condition IsProd]
  and: !And [!Condition A, !Condition B]
  or: !Or [!Condition A, !Condition B]
  map: !FindInMap [M, K, V]
  import: !ImportValue Shared
  base64: !Base64 text
  cidr: !Cidr ["10.0.0.0/16", 4, 8]
Resources: {}
""")

    # When it is loaded
    values = template.load_template()["Values"]

    # Then each tag has the JSON form CloudFormation itself uses
    assert values["ref"] == {"Ref": "Table"}
    assert values["getatt"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert values["getatt_list"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert values["sub"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert values["join"] == {"Fn::Join": [",", ["a", "b"]]}
    assert values["select"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert values["split"] == {"Fn::Split": [",", "a,b"]}
    assert values["if"] == {"Fn::If": ["IsProd", 1, 2]}
    assert values["equals"] == {"Fn::Equals": ["a", "b"]}
    assert values["not"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    assert values["and"] == {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]}
    assert values["or"] == {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]}
    assert values["map"] == {"Fn::FindInMap": ["M", "K", "V"]}
    assert values["import"] == {"Fn::ImportValue": "Shared"}
    assert values["base64"] == {"Fn::Base64": "text"}
    assert values["cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}


# -- API Gateway v2 events and responses ------------------------------------------------------------------------
def _route(method: str, path: str):
    return next(r for r in template.http_routes() if r.method == method and r.path == path)


def test_a_request_becomes_the_payload_v2_event_api_gateway_sends():
    # Given a request with mixed-case and repeated headers, cookies and a repeated query parameter
    route = _route("GET", "/v1/observability/webhooks/{webhook_id}/deliveries")
    headers = [("X-Tenant-ID", "acme"), ("Accept", "application/json"), ("accept", "text/plain"),
               ("Cookie", "a=1; b=2"), ("User-Agent", "curl/8"), ("Host", "127.0.0.1:3000")]
    path = "/v1/observability/webhooks/maip-whk:01/deliveries"

    # When the gateway builds the event
    event = build_event("GET", path, "status=ok&status=failed&q=a%20b&flag", headers, b"", route,
                        route.match(path), "127.0.0.1")

    # Then it has the v2.0 shape: lowercased headers with duplicates comma-joined, cookies apart,
    # duplicate query values comma-joined, path parameters, no body and no stage variables
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/observability/webhooks/{webhook_id}/deliveries"
    assert event["rawPath"] == path
    assert event["rawQueryString"] == "status=ok&status=failed&q=a%20b&flag"
    assert event["headers"] == {"x-tenant-id": "acme", "accept": "application/json,text/plain", "user-agent": "curl/8",
                                "host": "127.0.0.1:3000"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"status": "ok,failed", "q": "a b", "flag": ""}
    assert event["pathParameters"] == {"webhook_id": "maip-whk:01"}
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "stageVariables" not in event
    context = event["requestContext"]
    assert context["http"] == {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                               "userAgent": "curl/8"}
    assert context["routeKey"] == event["routeKey"] and context["stage"] == "$default"
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    assert {"accountId", "apiId", "domainName", "domainPrefix"} <= set(context)

    # And Powertools reads it as an HTTP API v2 event
    parsed = APIGatewayProxyEventV2(event)
    assert parsed.path == path and parsed.http_method == "GET"
    assert parsed.path_parameters == {"webhook_id": "maip-whk:01"}
    assert parsed.query_string_parameters["status"] == "ok,failed"
    assert parsed.cookies == ["a=1", "b=2"]


def test_each_request_gets_its_own_request_id_and_no_query_means_no_parameters():
    route = _route("GET", "/v1/observability/events")

    # When two requests without a query string are built
    first, second = (build_event("GET", "/v1/observability/events", "", [], b"", route, {}, "127.0.0.1") for _ in range(2))

    # Then neither has queryStringParameters or pathParameters, and their request ids differ
    assert "queryStringParameters" not in first and "pathParameters" not in first
    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]


def test_bodies_are_text_when_utf8_and_base64_otherwise():
    route = _route("POST", "/v1/observability/events")
    text = json.dumps({"event_type": "agent.registered", "metadata": {"name": "zoë"}}).encode()

    # When a UTF-8 body and a binary body are sent
    as_text = build_event("POST", route.path, "", [], text, route, {}, "127.0.0.1")
    as_binary = build_event("POST", route.path, "", [], b"\xff\xfe\x00", route, {}, "127.0.0.1")

    # Then the first is passed as text, the second base64-encoded, and both decode back to the bytes sent
    assert (as_text["body"], as_text["isBase64Encoded"]) == (text.decode(), False)
    assert as_binary["isBase64Encoded"] is True
    assert base64.b64decode(as_binary["body"]) == b"\xff\xfe\x00"


def test_malformed_percent_encoding_in_the_query_does_not_break_the_event():
    route = _route("GET", "/v1/observability/events")

    # When the query has a bad escape and an escape that is not UTF-8
    event = build_event("GET", route.path, "a=%zz&b=%ff&c=%41", [], b"", route, {}, "127.0.0.1")

    # Then the bad escape is kept as sent, invalid UTF-8 is replaced, and valid escapes are decoded
    assert event["queryStringParameters"] == {"a": "%zz", "b": "\ufffd", "c": "A"}


def test_handler_responses_are_turned_into_http_responses_like_http_api_does():
    # A full response: status, headers, cookies, base64 body decoded
    status, headers, cookies, body = lambda_response({
        "statusCode": 201, "headers": {"Content-Type": "application/octet-stream"}, "cookies": ["s=1; HttpOnly"],
        "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert (status, headers, cookies, body) == (201, {"Content-Type": "application/octet-stream"}, ["s=1; HttpOnly"], b"\x00\x01")

    # No statusCode: 200 with the returned value as JSON (a string as it is), as HTTP API infers for format 2.0
    assert lambda_response({"ok": True}) == (200, {"content-type": "application/json"}, [], b'{"ok": true}')
    assert lambda_response("hello")[3] == b"hello"

    # A nonsensical status is an error (the gateway answers 500)
    with pytest.raises(ValueError):
        lambda_response({"statusCode": 42})
