"""Log-stream destinations between the HTTP API and the store. Every call is scoped by tenant: another
tenant's stream id is simply not found. URL destinations pass the same SSRF guard as webhooks."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from maip_events.errors import Conflict, InvalidRequest, NotFound
from maip_events.ids import format_time, new_id, utc_now
from maip_events.http import guard, signing
from maip_events.siem import buckets
from maip_events.siem.models import CONFIG_MODELS, SECRET_FIELDS, CreateStreamRequest, UpdateStreamRequest
from maip_events.store.streams import COUNTERS, LogStream, StreamStore
from maip_events.webhooks import matching

STREAM_PREFIX = "maip-str:"
MAX_PER_TENANT = 20  # bounds the requests one stream batch fans out to
new_secret = signing.new_secret


def _validated_config(tenant_id: str, stream_type: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        model = CONFIG_MODELS[stream_type].model_validate(config)
    except ValidationError as err:
        details = [{"field": ".".join(["config", *(str(p) for p in e["loc"])]), "issue": e["msg"]} for e in err.errors()]
        raise InvalidRequest(f"`config` is not valid for a {stream_type} stream.", details=details) from None
    clean = model.model_dump(exclude_none=True)
    for name in ("url",):
        if name in clean:
            try:
                guard.check_registration(clean[name])
            except InvalidRequest as err:
                raise InvalidRequest(f"`config.{name}` is not allowed: {err.message}",
                                     details=[{"field": f"config.{name}", "issue": "refused URL"}]) from None
    if stream_type == "s3":
        buckets.check(tenant_id, clean["bucket"], clean.get("prefix", ""))
    return clean


def _mask(value: str) -> str:
    return "****" + value[-4:] if len(value) > 8 else "****"


def public(stream: LogStream, with_secret: bool = False) -> dict[str, Any]:
    config = {k: v for k, v in stream.config.items() if k != "secret"}
    for name in SECRET_FIELDS[stream.type]:
        if name in config:
            config[name] = _mask(str(config[name]))
    document: dict[str, Any] = {
        "id": stream.stream_id, "type": stream.type, "config": config, "event_types": stream.event_types,
        "format": stream.format, "status": stream.status, "description": stream.description,
        "created_at": stream.created_at, "updated_at": stream.updated_at,
        "delivery": {**{name: stream.counters.get(name, 0) for name in COUNTERS}, "last_success_at": stream.last_success_at,
                     "last_error_at": stream.last_error_at, "last_error": stream.last_error},
    }
    if with_secret:
        document["secret"] = stream.config.get("secret")
    return document


def create(tenant_id: str, request: CreateStreamRequest, store: StreamStore | None = None) -> LogStream:
    store = store or StreamStore()
    config = _validated_config(tenant_id, request.type, request.config)
    if request.type == "https":
        config["secret"] = new_secret()
    patterns = matching.validate_patterns(request.event_types)
    if len(store.by_tenant(tenant_id)) >= MAX_PER_TENANT:
        raise Conflict(f"A tenant can have at most {MAX_PER_TENANT} log streams; delete one first.")
    now = format_time(utc_now())
    stream = LogStream(tenant_id=tenant_id, stream_id=new_id(STREAM_PREFIX), type=request.type, config=config,
                       event_types=patterns, format=request.format, status="enabled", created_at=now, updated_at=now,
                       description=request.description)
    store.put(stream)
    return stream


def get(tenant_id: str, stream_id: str, store: StreamStore | None = None) -> LogStream:
    stream = (store or StreamStore()).get(tenant_id, stream_id) if stream_id.startswith(STREAM_PREFIX) else None
    if stream is None:
        raise NotFound(f"No log stream {stream_id}.")
    return stream


def list_all(tenant_id: str, store: StreamStore | None = None) -> list[LogStream]:
    return sorted((store or StreamStore()).by_tenant(tenant_id), key=lambda s: s.stream_id)


def update(tenant_id: str, stream_id: str, request: UpdateStreamRequest, store: StreamStore | None = None) -> LogStream:
    """Writes only the attributes sent, conditioned on the version read (config fields merge into the stored
    config), so concurrent PATCHes never lose each other's changes and delivery counters are never touched."""
    changes = request.model_dump(exclude_unset=True)

    def change(stream: LogStream) -> dict[str, Any]:
        attributes: dict[str, Any] = {"updated_at": format_time(utc_now())}
        if changes.get("config") is not None:
            foreign = sorted(set(request.config) - set(CONFIG_MODELS[stream.type].model_fields))
            if foreign:  # schema-valid settings of another stream type: they conflict with this stream's type
                raise Conflict(f"This is a {stream.type} stream; `config` may only change its settings.",
                               details=[{"field": f"config.{name}", "issue": f"not a {stream.type} setting"} for name in foreign])
            secret = stream.config.get("secret")
            merged = {k: v for k, v in stream.config.items() if k != "secret"}
            merged.update(request.config or {})
            attributes["config"] = _validated_config(tenant_id, stream.type, merged)
            if secret:
                attributes["config"]["secret"] = secret
        if "event_types" in changes:
            attributes["event_types"] = matching.validate_patterns(request.event_types or [])
        if request.format is not None:
            attributes["format"] = request.format
        if request.status is not None:
            attributes["status"] = request.status
        if "description" in changes:
            attributes["description"] = request.description
        return attributes

    stream = (store or StreamStore()).modify(tenant_id, stream_id, change) if stream_id.startswith(STREAM_PREFIX) else None
    if stream is None:
        raise NotFound(f"No log stream {stream_id}.")
    return stream


def delete(tenant_id: str, stream_id: str, store: StreamStore | None = None) -> None:
    if not stream_id.startswith(STREAM_PREFIX) or not (store or StreamStore()).delete(tenant_id, stream_id):
        raise NotFound(f"No log stream {stream_id}.")
