"""Subscription logic between the HTTP API / CLI and the store. Every call is scoped by tenant:
another tenant's id is simply not found."""
from __future__ import annotations

from typing import Any

from maip_events.errors import Conflict, InvalidRequest, NotFound
from maip_events.events import event_filter
from maip_events.ids import format_time, new_id, utc_now
from maip_events.store import cursor
from maip_events.store.events import EventStore
from maip_events.store.webhooks import DeliveryStore, Subscription, SubscriptionStore
from maip_events.http import guard, signing
from maip_events.webhooks import matching, queue
from maip_events.webhooks.models import CreateWebhookRequest, ReplayRequest, UpdateWebhookRequest

WEBHOOK_PREFIX = "maip-whk:"
DELIVERY_PREFIX = "maip-dlv:"
MAX_PER_TENANT = 100  # bounds the fanout's per-event work
ROTATION_OVERLAP = 24 * 3600  # the old secret keeps signing this long after a rotation
REPLAY_MAX_EVENTS = 10_000


def create(tenant_id: str, request: CreateWebhookRequest, store: SubscriptionStore | None = None) -> Subscription:
    store = store or SubscriptionStore()
    url = guard.check_registration(request.url)
    patterns = matching.validate_patterns(request.event_types)
    if len(store.by_tenant(tenant_id)) >= MAX_PER_TENANT:
        raise Conflict(f"A tenant can have at most {MAX_PER_TENANT} webhooks; delete one first.")
    now = format_time(utc_now())
    sub = Subscription(
        tenant_id=tenant_id, webhook_id=new_id(WEBHOOK_PREFIX), url=url, event_types=patterns, status="enabled",
        secret=signing.new_secret(), created_at=now, updated_at=now, description=request.description,
    )
    store.put(sub)
    return sub


def get(tenant_id: str, webhook_id: str, store: SubscriptionStore | None = None) -> Subscription:
    sub = (store or SubscriptionStore()).get(tenant_id, webhook_id) if webhook_id.startswith(WEBHOOK_PREFIX) else None
    if sub is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return sub


def list_all(tenant_id: str, store: SubscriptionStore | None = None) -> list[Subscription]:
    return sorted((store or SubscriptionStore()).by_tenant(tenant_id), key=lambda s: s.webhook_id)


def update(tenant_id: str, webhook_id: str, request: UpdateWebhookRequest, store: SubscriptionStore | None = None) -> Subscription:
    """Writes only the attributes sent (store.modify), so a concurrent auto-disable is never undone."""
    changes = request.model_dump(exclude_unset=True)

    def change(_: Subscription) -> dict[str, Any]:
        attributes: dict[str, Any] = {"updated_at": format_time(utc_now())}
        if "url" in changes:
            attributes["url"] = guard.check_registration(request.url or "")
        if "event_types" in changes:
            attributes["event_types"] = matching.validate_patterns(request.event_types or [])
        if "description" in changes:
            attributes["description"] = request.description
        if changes.get("status") == "enabled":
            attributes.update(status="enabled", disabled_reason=None, failing_since=None)  # a fresh start
        elif changes.get("status") == "disabled":
            attributes["status"] = "disabled"
        return attributes

    return _modified(tenant_id, webhook_id, change, store)


def _modified(tenant_id: str, webhook_id: str, change: Any, store: SubscriptionStore | None) -> Subscription:
    sub = (store or SubscriptionStore()).modify(tenant_id, webhook_id, change) if webhook_id.startswith(WEBHOOK_PREFIX) else None
    if sub is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return sub


def delete(tenant_id: str, webhook_id: str, store: SubscriptionStore | None = None) -> None:
    if not webhook_id.startswith(WEBHOOK_PREFIX) or not (store or SubscriptionStore()).delete(tenant_id, webhook_id):
        raise NotFound(f"No webhook {webhook_id}.")


def rotate_secret(tenant_id: str, webhook_id: str, store: SubscriptionStore | None = None) -> Subscription:
    """The new secret replaces the one read, conditioned on its version: of two concurrent rotations the last
    write wins, and the secret it returned is the one that signs (the other becomes `previous_secret`)."""
    now = utc_now()
    secret = signing.new_secret()

    def change(current: Subscription) -> dict[str, Any]:
        return {"secret": secret, "previous_secret": current.secret, "updated_at": format_time(now),
                "previous_secret_expires_at": int(now.timestamp()) + ROTATION_OVERLAP}

    return _modified(tenant_id, webhook_id, change, store)


def deliveries(tenant_id: str, webhook_id: str, limit: int, next_token: str | None, event_id: str | None,
               status: str | None) -> dict[str, Any]:
    get(tenant_id, webhook_id)  # 404 for unknown ids and other tenants' ids
    scope = {"tenant": tenant_id, "webhook": webhook_id, "event": event_id, "status": status}
    after = str(cursor.decode(next_token, scope)["after"]) if next_token else None
    attempts, last = DeliveryStore().page(webhook_id, limit, after, event_id, status)
    return {
        "items": [a.public() for a in attempts],
        "next_token": cursor.encode(scope, {"after": last}) if last else None,
    }


def replay(tenant_id: str, webhook_id: str, request: ReplayRequest, max_events: int = REPLAY_MAX_EVENTS) -> dict[str, Any]:
    """Queues one new delivery per stored event of the window that the subscription matches."""
    sub = get(tenant_id, webhook_id)
    if sub.status != "enabled":
        raise Conflict("The webhook is disabled; enable it (PATCH status=enabled) before replaying.")
    now = format_time(utc_now())
    flt = event_filter(tenant_id, None, None, request.time_from, request.time_to or now)
    if flt.time_from is None:
        raise InvalidRequest("`from` is required.", details=[{"field": "from", "issue": "missing"}])
    messages, truncated = [], False
    for event in EventStore().iterate(flt):
        if not matching.matches(event.event_type, sub.event_types):
            continue
        if len(messages) == max_events:
            truncated = True
            break
        messages.append(queue.DeliveryMessage(delivery_id=new_id(DELIVERY_PREFIX), tenant_id=tenant_id, webhook_id=webhook_id,
                                              event=event, replay=True))
    messages.reverse()  # oldest first
    queue.enqueue(messages, replay=True)  # the replay lane: never in front of anyone's live deliveries
    return {"id": webhook_id, "count": len(messages), "truncated": truncated,
            "from": format_time(flt.time_from), "to": format_time(flt.time_to)}
