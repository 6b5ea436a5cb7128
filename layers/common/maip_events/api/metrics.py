"""GET /v1/observability/metrics (metrics:read): event counts over time, optionally grouped."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.metrics import query as metrics_query
from maip_events.models.errors import error_responses
from maip_events.models.formats import DATE_TIME_PATTERN

router = Router()

PARAMS = {"from", "to", "group_by", "interval"}


class Point(BaseModel):
    timestamp: str = Field(description="Start of the interval, UTC")
    count: int


class Series(BaseModel):
    key: Optional[str] = Field(description="The group's value (event type, severity or agent id); null = no group / no agent")
    total: int
    points: list[Point] = Field(description="Intervals with at least one event, oldest first")


class MetricsResponse(BaseModel):
    time_from: str = Field(alias="from", description="Aligned start of the window (start of its hour or day)")
    time_to: str = Field(alias="to", description="Aligned end of the window (last millisecond of its hour or day)")
    interval: Literal["hour", "day"]
    group_by: Optional[Literal["event_type", "severity", "agent_id"]]
    total: int = Field(description="Events in the window as counted by the stream aggregation (~1-2 s behind the writes; "
                                   "then equal to the `total` of GET /v1/observability/events for it)")
    series: list[Series]


@router.get(
    "/v1/observability/metrics",
    summary="Event counts over time",
    description=(
        "Counts of the tenant's events per hour or UTC day, optionally grouped by event_type, severity or agent_id. "
        "Counters are hour-granular: the window is widened to whole intervals and echoed as `from`/`to`. "
        "Default window: the last 24 hours. Counts appear within seconds of the events being stored."
    ),
    tags=["Metrics"],
    responses={200: {"description": "Time series", "content": {"application/json": {"model": MetricsResponse}}}, **error_responses()},
)
def get_metrics(
    time_from: Annotated[Optional[str], Query(alias="from", max_length=64, pattern=DATE_TIME_PATTERN, description="Start, ISO 8601 (UTC if no offset)")] = None,
    time_to: Annotated[Optional[str], Query(alias="to", max_length=64, pattern=DATE_TIME_PATTERN, description="End, ISO 8601 (UTC if no offset); default now")] = None,
    group_by: Annotated[Optional[Literal["event_type", "severity", "agent_id"]], Query(description="Split the counts by this field")] = None,
    interval: Annotated[Literal["hour", "day"], Query(description="Bucket size")] = "hour",
):
    principal = current_principal("metrics:read")
    reject_unknown_query(PARAMS)
    return json_response(200, metrics_query.query(principal.tenant_id, time_from, time_to, group_by, interval))
