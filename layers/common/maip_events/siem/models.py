"""Request and response shapes of /v1/observability/streams, and the per-type destination settings."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema

from maip_events.models.formats import EventTypePattern, WebhookUrl
from maip_events.siem.buckets import MAX_PREFIX, PREFIX_PATTERN

StreamType = Literal["splunk_hec", "datadog", "https", "s3"]
Url = WebhookUrl
# Credentials sent as HTTP header values: visible ASCII only (no spaces, control characters or non-Latin-1 text).
Secret = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Pattern = EventTypePattern
Description = Annotated[str, StringConstraints(max_length=512)]

DATADOG_SITES = ("datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com",
                 "ap2.datadoghq.com", "ddog-gov.com")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SplunkHecConfig(_Config):
    url: Url = Field(description="HEC base URL, e.g. https://splunk.example.com:8088 (/services/collector/event is appended)")
    token: Secret = Field(description="HEC token, sent as `Authorization: Splunk <token>`")
    index: Optional[Name] = None
    source: Name = "maip-events"
    sourcetype: Name = "maip:events"
    host: Name = "maip-events"


class DatadogConfig(_Config):
    api_key: Secret = Field(description="Datadog API key, sent as `DD-API-KEY`")
    site: Literal[DATADOG_SITES] = Field(default="datadoghq.com", description="Datadog site")  # type: ignore[valid-type]
    url: Optional[Url] = Field(default=None, description="Intake base URL instead of the site's (e.g. a proxy); /api/v2/logs is appended")
    service: Name = "maip-events"
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=20)
    compress: bool = Field(default=True, description="gzip the request body")


class HttpsConfig(_Config):
    url: Url = Field(description="https URL that receives POSTed NDJSON batches, signed like Standard Webhooks")


class S3Config(_Config):
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    # The pattern is buckets.PREFIX_PATTERN, enforced by buckets.check (400 with the reason) on create and change:
    # pydantic's Rust regex engine has no lookahead, so the schema states it and the model does not apply it.
    prefix: Annotated[str, StringConstraints(max_length=MAX_PREFIX),
                      WithJsonSchema({"type": "string", "maxLength": MAX_PREFIX, "pattern": PREFIX_PATTERN})] = Field(
        default="", description="Key prefix of plain path segments (letters, digits, `_`, `-`, `.`; no `.`/`..` or "
                                "empty segment), each ending in '/', e.g. maip/ (objects go to "
                                "<prefix>tenant=<own id>/dt=YYYY-MM-DD/hour=HH/<batch>.ndjson.gz)")


CONFIG_MODELS: dict[str, type[_Config]] = {"splunk_hec": SplunkHecConfig, "datadog": DatadogConfig, "https": HttpsConfig, "s3": S3Config}
SECRET_FIELDS = {"splunk_hec": ("token",), "datadog": ("api_key",), "https": ("secret",), "s3": ()}


class _CreateStream(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    event_types: list[Pattern] = Field(default_factory=lambda: ["*"], min_length=1, max_length=64,
                                       description="Catalog types, `namespace.*` or `*` (the default)")
    format: Literal["ocsf", "jsonl"] = Field(default="ocsf", description="Record format: OCSF 1.7.0 (default) or the list item")
    description: Optional[Description] = None


class CreateSplunkHecStream(_CreateStream):
    type: Literal["splunk_hec"]
    config: SplunkHecConfig


class CreateDatadogStream(_CreateStream):
    type: Literal["datadog"]
    config: DatadogConfig


class CreateHttpsStream(_CreateStream):
    type: Literal["https"]
    config: HttpsConfig


class CreateS3Stream(_CreateStream):
    type: Literal["s3"]
    config: S3Config


# One body per stream type, told apart by `type` (an OpenAPI discriminator): `config` is that type's settings.
CreateStreamRequest = Annotated[Union[CreateSplunkHecStream, CreateDatadogStream, CreateHttpsStream, CreateS3Stream],
                                Field(discriminator="type")]


def _partial(model: type[_Config]) -> type[_Config]:
    """The same settings, every field optional (but not nullable): what PATCH may send (the others are kept)."""
    from pydantic import create_model

    # field.metadata holds the constraints (lengths, patterns) that field.annotation alone has lost
    fields = {name: (Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation,
                     Field(default=None, description=field.description))
              for name, field in model.model_fields.items()}
    return create_model(f"{model.__name__}Patch", __base__=_Config, **fields)  # type: ignore[call-overload]


# PATCH carries no `type`: its config must be a partial config of some type (the stream's, checked on merge).
# Handlers get the fields that were sent, as a dict.
ConfigPatch = Annotated[Union[tuple(_partial(m) for m in CONFIG_MODELS.values())],  # type: ignore[valid-type]
                        AfterValidator(lambda patch: patch.model_dump(exclude_unset=True)),
                        PlainSerializer(lambda fields: fields)]


class UpdateStreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    config: Optional[ConfigPatch] = Field(default=None, description="Fields to change; the others are kept")
    event_types: list[Pattern] = Field(default=None, min_length=1, max_length=64)  # absent = kept; null is refused
    format: Optional[Literal["ocsf", "jsonl"]] = None
    status: Optional[Literal["enabled", "disabled"]] = Field(default=None, description="`disabled` stops delivery, pending retries included")
    description: Optional[Description] = None


class DeliveryStatus(BaseModel):
    delivered_events: int
    delivered_batches: int
    failed_attempts: int = Field(description="Requests that failed (each is retried with backoff)")
    retried_batches: int
    dead_lettered_events: int = Field(description="Events given up on after the last retry (kept in the dead-letter queue)")
    last_success_at: Optional[str]
    last_error_at: Optional[str]
    last_error: Optional[str]


class LogStreamDocument(BaseModel):
    id: str = Field(examples=["maip-str:01JD8X0Q6W1T3F4N5P6R7S8T9V"])
    type: StreamType
    config: dict[str, Any] = Field(description="Destination settings; tokens and keys masked")
    event_types: list[str]
    format: Literal["ocsf", "jsonl"]
    status: Literal["enabled", "disabled"]
    description: Optional[str]
    created_at: str
    updated_at: str
    delivery: DeliveryStatus


class LogStreamWithSecret(LogStreamDocument):
    secret: Optional[str] = Field(default=None, description="https streams: whsec_<base64> signing secret, shown only on creation")


class LogStreamList(BaseModel):
    items: list[LogStreamDocument]
