"""template.yaml, read as the single source of truth for the local stack and the tests."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from maip_events.settings import TABLE_DEFAULTS


class _CfnLoader(yaml.SafeLoader):
    """Turns CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) into their long forms."""


def _construct(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct)


def template_path() -> Path:
    if os.environ.get("MAIP_TEMPLATE"):
        return Path(os.environ["MAIP_TEMPLATE"])
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (base / "template.yaml").is_file():
            return base / "template.yaml"
    raise FileNotFoundError("template.yaml not found (run from the project root or set MAIP_TEMPLATE)")


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    return parse_template(path)


def parse_template(path: str | Path) -> dict[str, Any]:
    """Any CloudFormation/SAM template file as plain data (short tags in their long forms); not cached."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def load_template() -> dict[str, Any]:
    return _load(str(template_path()))


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in load_template()["Resources"].items() if r.get("Type") == kind}


def _global_env() -> dict[str, Any]:
    return load_template().get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})


def local_name(logical_id: str) -> str:
    """The local name of a table or queue: the env var that references it in Globals, or its default."""
    for var, value in _global_env().items():
        if value == {"Ref": logical_id} or value == {"Fn::GetAtt": [logical_id, "QueueName"]}:
            return os.environ.get(var) or TABLE_DEFAULTS.get(var) or _kebab(logical_id)
    return _kebab(logical_id)


def _kebab(name: str) -> str:
    return "maip-" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def table_definitions() -> list[dict[str, Any]]:
    """boto3 create_table kwargs for every AWS::DynamoDB::Table (plus TimeToLiveSpecification)."""
    tables = []
    for logical_id, resource in _resources("AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        definition: dict[str, Any] = {
            "TableName": local_name(logical_id),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                definition[key] = props[key]
        if "StreamSpecification" in props:
            definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "TimeToLiveSpecification" in props:
            definition["TimeToLiveSpecification"] = props["TimeToLiveSpecification"]
        tables.append(definition)
    return tables


def table_logical_ids() -> dict[str, str]:
    return {logical_id: local_name(logical_id) for logical_id in _resources("AWS::DynamoDB::Table")}


def queue_definitions() -> list[dict[str, Any]]:
    """create_queue kwargs for every AWS::SQS::Queue; dead-letter targets are given as logical ids."""
    queues = []
    for logical_id, resource in _resources("AWS::SQS::Queue").items():
        props = resource.get("Properties", {})
        attributes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in props and isinstance(props[key], (int, str)):
                attributes[key] = str(props[key])
        redrive = props.get("RedrivePolicy")
        queues.append({
            "logical_id": logical_id,
            "QueueName": local_name(logical_id),
            "Attributes": attributes,
            "dead_letter_target": _ref_target(redrive.get("deadLetterTargetArn")) if redrive else None,
            "max_receive_count": int(redrive.get("maxReceiveCount", 5)) if redrive else None,
        })
    return queues


def kms_key_definitions() -> list[dict[str, Any]]:
    """create_key kwargs for every AWS::KMS::Key, with the alias the local stack gives it ("alias/maip-<kebab id>",
    the default MAIP_SIGNING_KEY of maip_events.integrity.config)."""
    keys = []
    for logical_id, resource in _resources("AWS::KMS::Key").items():
        props = resource.get("Properties", {})
        keys.append({"alias": f"alias/{_kebab(logical_id)}",
                     "create": {k: props[k] for k in ("KeySpec", "KeyUsage", "Description") if isinstance(props.get(k), str)}})
    return keys


def bucket_names() -> list[str]:
    """The local name of every AWS::S3::Bucket (the env var of Globals that references it, or its default)."""
    return [local_name(logical_id) for logical_id in _resources("AWS::S3::Bucket")]


def _ref_target(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
    return None


def _function_setting(props: dict[str, Any], key: str, default: Any) -> Any:
    return props.get(key, load_template().get("Globals", {}).get("Function", {}).get(key, default))


@dataclass(frozen=True)
class Function:
    logical_id: str
    module: str  # e.g. functions.emit.app
    handler: str  # e.g. lambda_handler
    timeout: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: Function
    pattern: re.Pattern = field(compare=False)
    params: tuple[str, ...] = field(default=(), compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return dict(zip(self.params, found.groups())) if found else None


@dataclass(frozen=True)
class Consumer:
    function: Function
    kind: str  # "DynamoDB" or "SQS"
    source: str  # logical id of the table or queue
    batch_size: int
    filters: tuple[dict[str, Any], ...]
    report_failures: bool
    max_retries: int
    on_failure: str | None  # logical id of the on-failure destination queue
    batching_window: float = 0.0  # MaximumBatchingWindowInSeconds: wait up to this long for a fuller batch
    max_concurrency: int = 1  # SQS ScalingConfig.MaximumConcurrency: concurrent batches of this source


def _functions() -> list[tuple[Function, dict[str, Any]]]:
    found = []
    for logical_id, resource in _resources("AWS::Serverless::Function").items():
        props = resource.get("Properties") or {}
        code_uri, handler_path = _function_setting(props, "CodeUri", None), _function_setting(props, "Handler", None)
        if not isinstance(code_uri, str) or not isinstance(handler_path, str):
            continue  # image or S3-packaged functions cannot be imported locally
        code = code_uri.strip("/").replace("/", ".")
        module_name, handler = handler_path.rsplit(".", 1)
        function = Function(logical_id, f"{code}.{module_name}", handler, int(_function_setting(props, "Timeout", 3)))
        found.append((function, props))
    return found


def _path_pattern(path: str) -> tuple[re.Pattern, tuple[str, ...]]:
    params: list[str] = []
    regex = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            greedy = name.endswith("+")
            params.append(name.rstrip("+"))
            regex += "(.+)" if greedy else "([^/]+)"  # a {param} never spans a slash
        else:
            regex += re.escape(piece)
    return re.compile(regex), tuple(params)


def http_routes() -> list[Route]:
    routes = []
    for function, props in _functions():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            path, method = event["Properties"]["Path"], event["Properties"]["Method"].upper()
            pattern, params = _path_pattern(path)
            routes.append(Route(method, path, function, pattern, params))
    # Most specific first, as API Gateway chooses: literal paths, then {param}, then greedy {proxy+}.
    return sorted(routes, key=lambda r: ("+}" in r.path, len(r.params), -len(r.path)))


def stream_consumers() -> list[Consumer]:
    consumers = []
    for function, props in _functions():
        for event in (props.get("Events") or {}).values():
            kind = event.get("Type")
            if kind not in ("DynamoDB", "SQS"):
                continue
            p = event["Properties"]
            source = _ref_target(p.get("Stream") if kind == "DynamoDB" else p.get("Queue"))
            patterns = tuple(json.loads(f["Pattern"]) if isinstance(f.get("Pattern"), str) else f.get("Pattern", {})
                             for f in (p.get("FilterCriteria") or {}).get("Filters", []))
            destination = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            consumers.append(Consumer(
                function=function,
                kind=kind,
                source=source or "",
                batch_size=int(p.get("BatchSize", 100 if kind == "DynamoDB" else 10)),
                filters=patterns,
                report_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                max_retries=int(p.get("MaximumRetryAttempts", 3)),
                on_failure=_ref_target(destination),
                batching_window=float(p.get("MaximumBatchingWindowInSeconds", 0)),
                max_concurrency=int((p.get("ScalingConfig") or {}).get("MaximumConcurrency", 1)) if kind == "SQS" else 1,
            ))
    return consumers


def scheduled_functions() -> list[Function]:
    """Functions with a Schedule (EventBridge) event; locally each runs every MAIP_LOCAL_SCHEDULE_SECONDS."""
    return [function for function, props in _functions()
            if any(e.get("Type") in ("Schedule", "ScheduleV2") for e in (props.get("Events") or {}).values())]
