"""`maip-events verify`: check an export with proofs offline, or a live API's export and checkpoints.

Offline (`verify FILE`) needs nothing but the file (and, better, the public key obtained out of band).
Online (`verify --url`) downloads the public key, the export with proofs (all pages) and the checkpoints it
can see, then also checks that every checkpoint extends the one before it (consistency proofs) and names it
in its `previous` field. Exit 0: verified; 1: the evidence is bad (the first bad line is named); 2: usage.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

API = "/v1/observability"


def add_parser(sub: argparse._SubParsersAction, common) -> None:
    parser = sub.add_parser(
        "verify", help="verify an export with proofs offline (FILE) or a live API's audit trail (--url)",
        description="Checks every leaf hash and inclusion proof against the signed checkpoint, the contiguity of "
                    "leaf indices, the window's edges and the checkpoint signature. Exit 0 = verified, 1 = not.")
    parser.add_argument("file", nargs="?", help="a JSONL export made with proofs=true")
    parser.add_argument("--public-key", metavar="JWK_FILE",
                        help="the log's public key (JWK) obtained out of band; default: the key in the export's trailer")
    parser.add_argument("--url", help="verify against a live API instead of a file, e.g. http://127.0.0.1:3000")
    parser.add_argument("--tenant", help="with --url: the tenant (X-Tenant-ID)")
    parser.add_argument("--api-key", help="with --url: an API key with events:read")
    parser.add_argument("--from", dest="start", help="with --url: window start (ISO 8601, inclusive)")
    parser.add_argument("--to", dest="end", help="with --url: window end (ISO 8601, inclusive)")
    common(parser)  # --json and --dynamodb-endpoint, like every command (verify itself never touches DynamoDB)


def run(args: argparse.Namespace) -> int:
    if bool(args.file) == bool(args.url):
        return _usage(args, "give either FILE or --url")
    if args.url and not (args.tenant and args.api_key):
        return _usage(args, "--url needs --tenant and --api-key")
    if args.file and (args.start or args.end):
        return _usage(args, "--from/--to apply to --url only (a file's window is in its trailer)")
    key, key_source = None, None
    if args.public_key:
        try:
            key = json.loads(Path(args.public_key).read_text())
        except (OSError, ValueError) as err:
            return _usage(args, f"cannot read --public-key {args.public_key}: {err}")
        key_source = f"public key {args.public_key}"
    if args.file:
        if not Path(args.file).is_file():
            return _usage(args, f"no such file: {args.file}")
        from maip_events.integrity.verify import verify_export

        result = verify_export(args.file, key, key_source)
        return _report(args, result.ok, result.summary(), result.to_dict())
    return _verify_online(args, key, key_source)


def _usage(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"error": {"code": "invalid_request", "message": message}}))
    else:
        print(f"maip-events verify: {message}", file=sys.stderr)
    return 2


def _report(args: argparse.Namespace, ok: bool, summary: str, document: dict) -> int:
    if args.json:
        print(json.dumps({**document, "ok": ok, "summary": summary}, ensure_ascii=False, default=str))
    else:
        print(summary, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


class _Api:
    def __init__(self, url: str, tenant: str, api_key: str):
        import httpx

        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=60.0,
                                   headers={"X-API-Key": api_key, "X-Tenant-ID": tenant})

    def get(self, path: str, params: dict | None = None, ok: tuple[int, ...] = (200,)) -> Any:
        response = self.client.get(API + path, params={k: v for k, v in (params or {}).items() if v is not None})
        if response.status_code not in ok:
            raise RuntimeError(f"GET {API}{path} answered {response.status_code}: {response.text[:300]}")
        return response

    def export_to(self, target: Path, start: str | None, end: str | None) -> int:
        """Every page of the export with proofs, concatenated in order into `target`; returns the page count."""
        params = {"format": "jsonl", "proofs": "true", "from": start, "to": end}
        pages = 0
        with target.open("wb") as out:
            while True:
                response = self.get("/events/export", params)
                out.write(response.content)
                pages += 1
                token = response.headers.get("X-Next-Token")
                if not token:
                    return pages
                params = {**params, "next_token": token}


def _verify_online(args: argparse.Namespace, key: dict | None, key_source: str | None) -> int:
    from maip_events.integrity.verify import verify_export

    api = _Api(args.url, args.tenant, args.api_key)
    served_key = api.get("/integrity/public-key").json()
    if key is None:
        key, key_source = served_key, f"public key from {args.url}"
    with tempfile.TemporaryDirectory(prefix="maip-verify-") as folder:
        export_path = Path(folder) / "export.jsonl"
        pages = api.export_to(export_path, args.start, args.end)
        result = verify_export(export_path, key, key_source)
    document: dict = {"export": result.to_dict(), "pages": pages}
    if not result.ok:
        return _report(args, False, f"export: {result.summary()}", document)
    problem = _window_problem(result.window, args.start, args.end)
    if problem:
        return _report(args, False, f"FAILED: window edge violated: {problem}", document)
    problem, checkpoints = _check_checkpoints(api, key, result.checkpoint, args.start)
    document["checkpoints"] = checkpoints
    if problem:
        return _report(args, False, f"FAILED: checkpoints: {problem}", document)
    sizes = [c["tree_size"] for c in checkpoints]
    chain = (f"{len(checkpoints)} checkpoint(s) (tree sizes {sizes[0]}..{sizes[-1]}) signed, chained and consistent"
             if checkpoints else "no other checkpoints")
    return _report(args, True, f"{result.summary()}; {chain}", document)


def _window_problem(window: dict, start: str | None, end: str | None) -> str | None:
    """The export's edges are proven against the window its trailer states: that must be the one asked for
    (the server states bounds at millisecond precision, `from` rounded up and `to` down)."""
    from datetime import timedelta

    from maip_events.ids import parse_time

    for name, asked in (("from", start), ("to", end)):
        stated = window.get(name)
        if (asked is None) != (stated is None) or (
                asked is not None and abs(parse_time(stated) - parse_time(asked)) >= timedelta(milliseconds=1)):
            return f"the export's window {name}={stated!r}, but {name}={asked!r} was asked for"
    return None


def _check_checkpoints(api: _Api, key: dict, exported: dict | None, start: str | None) -> tuple[str | None, list[dict]]:
    """The checkpoints sealed from the window's start up to the latest, plus the export's: each signed by
    `key`, each naming its predecessor in `previous`, each extending the one before (consistency proof)."""
    from maip_events.integrity.verify import (b64decode_hash, checkpoint_digest, checkpoint_signature_problem,
                                              verify_consistency)

    # Everything sealed from the window's start to the latest: neighbours in this chain are neighbours in the
    # seal sequence and must link through `previous`. (The window's end does not matter: later checkpoints
    # must still extend it.)
    listed = _list_checkpoints(api, start) + [api.get("/integrity/checkpoints/latest").json()]
    by_size: dict[int, dict] = {}
    for checkpoint in sorted(listed, key=lambda c: (c.get("tree_size", -1), c.get("sealed_at") or "")):
        size = checkpoint.get("tree_size")
        if size in by_size and by_size[size].get("root_hash") != checkpoint.get("root_hash"):
            return f"two checkpoints of tree size {size} with different roots (a forked log)", list(by_size.values())
        by_size[size] = checkpoint
    chain = [by_size[size] for size in sorted(by_size)]
    if exported and exported.get("tree_size") in by_size and by_size[exported["tree_size"]].get("root_hash") != exported.get("root_hash"):
        return f"the export's checkpoint and the API's disagree on the root of tree size {exported['tree_size']} (a forked log)", chain
    if exported and exported.get("tree_size") not in by_size:
        by_size[exported.get("tree_size")] = exported
    ordered = [by_size[size] for size in sorted(by_size)]
    for checkpoint in ordered:
        problem = checkpoint_signature_problem(checkpoint, key)
        if problem:
            return f"bad signature on the checkpoint of tree size {checkpoint.get('tree_size')}: {problem}", ordered
    for older, newer in zip(chain, chain[1:]):
        if newer.get("previous") != checkpoint_digest(older):
            return (f"the checkpoint of tree size {newer['tree_size']} does not name the one of tree size "
                    f"{older['tree_size']} as `previous` (a checkpoint was removed or rewritten)"), ordered
    for older, newer in zip(ordered, ordered[1:]):
        first, second = older["tree_size"], newer["tree_size"]
        proof_doc = api.get("/integrity/consistency", {"first": first, "second": second}).json()
        try:
            proof = [b64decode_hash(p) for p in proof_doc.get("proof", [])]
            roots = b64decode_hash(older["root_hash"]), b64decode_hash(newer["root_hash"])
        except ValueError as err:
            return f"malformed consistency proof {first}->{second}: {err}", ordered
        if not verify_consistency(first, second, roots[0], roots[1], proof):
            return f"tree size {second} is not consistent with tree size {first}: the log was rewritten", ordered
    return None, ordered


def _list_checkpoints(api: _Api, start: str | None) -> list[dict]:
    """Checkpoints sealed since `start`, oldest first. A listing is capped (1,000): continue from the last
    `sealed_at` seen until a page brings nothing new."""
    items: list[dict] = []
    seen: set[tuple] = set()
    cursor = start
    while True:
        page = api.get("/integrity/checkpoints", {"from": cursor}).json().get("items", [])
        new = [c for c in page if (c.get("tree_size"), c.get("root_hash")) not in seen]
        if not new:
            return items
        items += new
        seen |= {(c.get("tree_size"), c.get("root_hash")) for c in new}
        cursor = max(str(c.get("sealed_at")) for c in page)
