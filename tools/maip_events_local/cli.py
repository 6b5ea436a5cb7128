"""`maip-events`: the local stack and the operator commands (API keys, webhooks, tenant settings)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

from maip_events_local import verify_cli

COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {}


def command(name: str) -> Callable:
    def register(func: Callable) -> Callable:
        COMMANDS[name] = func
        return func

    return register


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    parser.add_argument(
        "--dynamodb-endpoint",
        default=os.environ.get("MAIP_DYNAMODB_ENDPOINT"),
        help="DynamoDB endpoint (env MAIP_DYNAMODB_ENDPOINT); absent = the normal AWS credential chain",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maip-events", description="MAIP Events: local stack and operator commands")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the Docker-less local stack")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--dynamodb-port", type=int, default=8000)
    _common(serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create an API key (the secret is shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated from events:write, events:read, webhooks:write, webhooks:read, metrics:read, "
                        "streams:write, streams:read, or * (all)")
    create.add_argument("--name")
    listing = keys.add_parser("list", help="list a tenant's keys (never the secrets)")
    listing.add_argument("--tenant", required=True)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    for p in (create, listing, revoke):
        _common(p)

    webhooks = sub.add_parser("webhooks", help="manage webhook subscriptions").add_subparsers(dest="action", required=True)
    wh_create = webhooks.add_parser("create", help="subscribe a URL (prints the signing secret)")
    wh_create.add_argument("--tenant", required=True)
    wh_create.add_argument("--url", required=True)
    wh_create.add_argument("--events", default="*", help="comma-separated: catalog types, namespace.* or * (default)")
    wh_create.add_argument("--description")
    wh_list = webhooks.add_parser("list", help="list a tenant's webhooks")
    wh_list.add_argument("--tenant", required=True)
    wh_delete = webhooks.add_parser("delete", help="delete a webhook; its deliveries stop")
    wh_delete.add_argument("webhook_id")
    wh_delete.add_argument("--tenant", help="the owning tenant (looked up when omitted)")
    for p in (wh_create, wh_list, wh_delete):
        _common(p)

    tenants = sub.add_parser("tenants", help="per-tenant settings").add_subparsers(dest="action", required=True)
    retention = tenants.add_parser(
        "set-retention", help="a tenant's tiers: days in DynamoDB (hot, 1-365, default 30) and listed from the S3 archive "
                              "(hot days to 3653, default 365); either or both")
    retention.add_argument("--tenant", required=True)
    retention.add_argument("--hot-days", type=int, dest="hot_days", help="days events stay in DynamoDB (their TTL); "
                           "lowering it loses nothing, the events are in the archive")
    retention.add_argument("--days", type=int, dest="hot_days", help="deprecated: the same as --hot-days")
    retention.add_argument("--archive-days", type=int, help="days events stay listed (from the archive once older "
                           "than the hot days); lowering it hides older days at once, compaction deletes them")
    write_shards = tenants.add_parser(
        "set-write-shards", help="spread a tenant's new events over N partition keys (1-64, default 1); lists keep every event")
    write_shards.add_argument("--tenant", required=True)
    write_shards.add_argument("--shards", type=int, required=True)
    show = tenants.add_parser("show", help="a tenant's settings")
    show.add_argument("--tenant", required=True)
    for p in (retention, write_shards, show):
        _common(p)
    from maip_events_local import http_cli  # `events emit|list|tail|export`: the event API over HTTP

    http_cli.add_parsers(sub, _common, COMMANDS)
    verify_cli.add_parser(sub, _common)
    return parser


COMMANDS["verify"] = verify_cli.run


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": {"code": "invalid_request" if code == 2 else "failed", "message": message}}))
    else:
        print(f"maip-events: {message}", file=sys.stderr)
    return code


def _print(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, ensure_ascii=False) if args.json else text)


@command("keys create")
def keys_create(args: argparse.Namespace) -> Any:
    from maip_events.auth.keys import create_api_key

    key = create_api_key(args.tenant, args.scopes.split(","), args.name)
    _print(args, key, f"key_id:  {key['key_id']}\napi_key: {key['api_key']}   (shown once: store it now)\n"
                      f"tenant:  {key['tenant_id']}\nscopes:  {','.join(key['scopes'])}")


@command("keys list")
def keys_list(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.auth.keys import list_api_keys

    validate_tenant_id(args.tenant)
    keys = list_api_keys(args.tenant)
    lines = [f"{k['key_id']}  {','.join(k['scopes'])}  {'revoked ' + k['revoked_at'] if k['revoked_at'] else 'active'}  {k['name'] or ''}" for k in keys]
    _print(args, {"items": keys}, "\n".join(lines) or "no keys")


@command("keys revoke")
def keys_revoke(args: argparse.Namespace) -> Any:
    from maip_events.auth.keys import revoke_api_key

    key = revoke_api_key(args.key_id)
    if key is None:
        return _fail(args, f"no key {args.key_id}", 1)
    _print(args, key, f"revoked {key['key_id']} at {key['revoked_at']}")


@command("webhooks create")
def webhooks_create(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.webhooks import subscriptions
    from maip_events.webhooks.models import CreateWebhookRequest

    validate_tenant_id(args.tenant)
    request = CreateWebhookRequest(url=args.url, event_types=[e.strip() for e in args.events.split(",") if e.strip()],
                                   description=args.description)
    doc = subscriptions.create(args.tenant, request).public(with_secret=True)
    _print(args, doc, f"id:     {doc['id']}\nurl:    {doc['url']}\nevents: {','.join(doc['event_types'])}\n"
                      f"secret: {doc['secret']}   (shown once: store it now)")


@command("webhooks list")
def webhooks_list(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.webhooks import subscriptions

    validate_tenant_id(args.tenant)
    items = [s.public() for s in subscriptions.list_all(args.tenant)]
    lines = [f"{w['id']}  {w['status']}  {','.join(w['event_types'])}  {w['url']}" for w in items]
    _print(args, {"items": items}, "\n".join(lines) or "no webhooks")


@command("webhooks delete")
def webhooks_delete(args: argparse.Namespace) -> Any:
    from maip_events.store.webhooks import SubscriptionStore
    from maip_events.webhooks import subscriptions

    tenant = args.tenant or SubscriptionStore().tenant_of(args.webhook_id)
    if tenant is None:
        return _fail(args, f"no webhook {args.webhook_id}", 1)
    from maip_events.errors import NotFound

    try:
        subscriptions.delete(tenant, args.webhook_id)
    except NotFound:
        return _fail(args, f"no webhook {args.webhook_id}", 1)
    _print(args, {"id": args.webhook_id, "tenant_id": tenant, "deleted": True}, f"deleted {args.webhook_id}")


@command("tenants set-retention")
def tenants_set_retention(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.store.tenants import TenantSettingsStore

    validate_tenant_id(args.tenant)
    doc = TenantSettingsStore().set_tiers(args.tenant, hot_days=args.hot_days, archive_days=args.archive_days)
    ttl = f"; new TTLs from {doc['ttl_applies_from']}" if "ttl_applies_from" in doc else ""
    _print(args, doc, f"tenant {doc['tenant_id']}: {doc['hot_days']} days in DynamoDB, {doc['archive_days']} days "
                      f"listed from the archive{ttl}")


@command("tenants set-write-shards")
def tenants_set_write_shards(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.store.tenants import TenantSettingsStore

    validate_tenant_id(args.tenant)
    doc = TenantSettingsStore().set_write_shards(args.tenant, args.shards)
    _print(args, doc, f"tenant {doc['tenant_id']}: new events spread over {doc['write_shards']} write shard(s) from "
                      f"{doc['write_shards_from']}; lists read {doc['read_shards']} shard(s)")


@command("tenants show")
def tenants_show(args: argparse.Namespace) -> Any:
    from maip_events.auth import validate_tenant_id
    from maip_events.store.tenants import TenantSettingsStore

    validate_tenant_id(args.tenant)
    store = TenantSettingsStore()
    tiers, shards = store.tiers(args.tenant), store.shards(args.tenant)
    _print(args, {"tenant_id": args.tenant, "hot_days": tiers.hot.days, "archive_days": tiers.archive_days,
                  "retention_days": tiers.hot.days, "write_shards": shards.write, "read_shards": shards.read},
           f"tenant {args.tenant}: {tiers.hot.days} days hot (DynamoDB), {tiers.archive_days} days archived (S3), "
           f"{shards.write} write shard(s), {shards.read} read shard(s)")


@command("serve")
def serve(args: argparse.Namespace) -> Any:
    from maip_events_local.server import serve as run

    run(args.host, args.port, args.dynamodb_port, args.json)


def _is_loopback(endpoint: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(endpoint).hostname or "") in ("127.0.0.1", "localhost", "::1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dynamodb_endpoint and args.command != "serve":
        os.environ["MAIP_DYNAMODB_ENDPOINT"] = args.dynamodb_endpoint
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "testing")  # the embedded DynamoDB accepts any credentials
        if _is_loopback(args.dynamodb_endpoint):
            os.environ.setdefault("MAIP_LOCAL", "1")  # operating the local stack: its loopback webhook targets are fine
    name = " ".join(filter(None, [args.command, getattr(args, "action", None)]))
    from maip_events.errors import ApiError

    try:
        result = COMMANDS[name](args)
    except ApiError as err:
        return _fail(args, err.message, 2)
    except ValueError as err:
        return _fail(args, str(err), 2)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # AWS/network failures: one clear line, no traceback
        return _fail(args, f"{type(err).__name__}: {err}", 1)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
