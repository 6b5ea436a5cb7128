"""Tamper-evident audit trail API: the public key (no auth), checkpoints, inclusion and consistency proofs
(events:read). Logic in maip_events.integrity.proofs."""
from __future__ import annotations

from typing import Annotated, Optional

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from maip_events.api.app import current_principal, json_response, reject_unknown_query
from maip_events.integrity import signing
from maip_events.integrity.proofs import IntegrityService
from maip_events.models.errors import error_responses
from maip_events.models.formats import DATE_TIME_PATTERN
from maip_events.models.integrity import CheckpointList, ConsistencyProof, InclusionProof, PublicKey
from maip_events.models.integrity import Checkpoint as CheckpointModel

router = Router()

BASE = "/v1/observability/integrity"
PUBLIC_KEY_PATH = f"{BASE}/public-key"
TAGS = ["Integrity"]
TreeSize = Annotated[int, Query(ge=1, le=2**53, description="tree_size of a checkpoint")]


def _ok(model: type, description: str) -> dict:
    return {200: {"description": description, "content": {"application/json": {"model": model}}}}


@router.get(PUBLIC_KEY_PATH, summary="Checkpoint signing key", tags=TAGS,
            description="The public key (JWK, ES256) that signs every checkpoint; no authentication needed.",
            responses={**_ok(PublicKey, "The JWK"), **{s: error_responses()[s] for s in (400, 500)}})
def public_key():
    reject_unknown_query(set())
    return json_response(200, signing.public_jwk())


@router.get(f"{BASE}/checkpoints/latest", summary="Latest checkpoint", tags=TAGS,
            responses={**_ok(CheckpointModel, "The tenant's latest signed checkpoint"), **error_responses(404)})
def latest_checkpoint():
    principal = current_principal("events:read")
    reject_unknown_query(set())
    return json_response(200, IntegrityService().latest(principal.tenant_id))


@router.get(f"{BASE}/checkpoints", summary="Checkpoints sealed in a window", tags=TAGS,
            description="Signed checkpoints whose `sealed_at` is in [from, to], oldest first (at most 1,000).",
            responses={**_ok(CheckpointList, "Checkpoints"), **error_responses()})
def list_checkpoints(
    time_from: Annotated[Optional[str], Query(alias="from", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive start, ISO 8601")] = None,
    time_to: Annotated[Optional[str], Query(alias="to", max_length=64, pattern=DATE_TIME_PATTERN, description="Inclusive end, ISO 8601")] = None,
):
    principal = current_principal("events:read")
    reject_unknown_query({"from", "to"})
    return json_response(200, {"items": IntegrityService().checkpoints(principal.tenant_id, time_from, time_to)})


@router.get(f"{BASE}/consistency", summary="Consistency proof between two checkpoints", tags=TAGS,
            description="RFC 6962 §2.1.2 proof that the tree of size `first` is a prefix of the tree of size `second`.",
            responses={**_ok(ConsistencyProof, "The proof and both checkpoints"), **error_responses(404)})
def consistency(first: TreeSize, second: TreeSize):
    principal = current_principal("events:read")
    reject_unknown_query({"first", "second"})
    return json_response(200, IntegrityService().consistency(principal.tenant_id, first, second))


@router.get("/v1/observability/events/<event_id>/proof", summary="Inclusion proof of an event", tags=TAGS,
            description=("RFC 6962 audit path of the event's leaf in the checkpoint of `tree_size` (default: the latest). "
                         "404 if the event is unknown or not sealed in that tree; 410 if it expired by retention."),
            responses={**_ok(InclusionProof, "The proof and its checkpoint"), **error_responses(404, 410)})
def inclusion_proof(
    event_id: Annotated[str, Path(max_length=64, description="maip-evt:<ULID>")],
    tree_size: Annotated[Optional[int], Query(ge=1, le=2**53, description="tree_size of a checkpoint (default: latest)")] = None,
):
    principal = current_principal("events:read")
    reject_unknown_query({"tree_size"})
    return json_response(200, IntegrityService().inclusion(principal.tenant_id, event_id, tree_size))
