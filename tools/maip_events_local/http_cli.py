"""`maip-events events emit|list|tail|export`: the event API from a terminal, over HTTP only (never DynamoDB),
so it works the same against `maip-events serve` and a deployed stack.

Connection: `--url`, `--tenant`, `--api-key` or `--token` (env MAIP_URL, MAIP_TENANT, MAIP_API_KEY, MAIP_TOKEN;
an option beats its env var). Exit codes: 0 done, 1 API or network failure (the API's message on stderr),
2 bad usage or a 400 from the API, 130 an interrupted export (re-run to resume).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

EVENTS_PATH = "/v1/observability/events"
EXPORT_PATH = "/v1/observability/events/export"
RETRIES = 3  # for 429 always; 502/503/504 and connection failures on requests that are safe to repeat
TAIL_OVERLAP = timedelta(seconds=10)  # tail re-reads this much behind its newest event (late writes, clock skew)
STATE_SUFFIX = ".partial-state"


class CliError(Exception):
    """A failure to report: `message` on stderr, `document` (or a generic error) as the --json output."""

    def __init__(self, message: str, exit_code: int = 1, document: dict | None = None):
        super().__init__(message)
        self.message, self.exit_code = message, exit_code
        self.document = document or {"error": {"code": "invalid_request" if exit_code == 2 else "failed", "message": message}}


# ---------------------------------------------------------------------------------------------------- connection

@dataclass(frozen=True)
class Connection:
    url: str
    tenant: str
    credential: dict[str, str]  # X-API-Key or Authorization


def _setting(value: str | None, env: str) -> str | None:
    return value if value else (os.environ.get(env) or None)


def connection(args: argparse.Namespace) -> Connection:
    url, tenant = _setting(args.url, "MAIP_URL"), _setting(args.tenant, "MAIP_TENANT")
    # An option beats any env var; both credentials from the same source are ambiguous.
    if args.api_key or args.token:
        api_key, token = args.api_key, args.token
    else:
        api_key, token = os.environ.get("MAIP_API_KEY") or None, os.environ.get("MAIP_TOKEN") or None
    if api_key and token:
        raise CliError("give either an API key (--api-key, MAIP_API_KEY) or a Bearer token (--token, MAIP_TOKEN), not both", 2)
    missing = [name for name, value in (("--url (or MAIP_URL)", url), ("--tenant (or MAIP_TENANT)", tenant),
                                        ("--api-key (or MAIP_API_KEY) or --token (or MAIP_TOKEN)", api_key or token)) if not value]
    if missing:
        raise CliError(f"missing settings: {'; '.join(missing)}", 2)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https:// (got {url!r})", 2)
    credential = {"X-API-Key": api_key} if api_key else {"Authorization": f"Bearer {token}"}
    return Connection(url.rstrip("/"), tenant, credential)


def _api_error(response) -> CliError:
    try:
        document = response.json()
        error = document["error"]
        message = f"{error['code']}: {error['message']}"
        message += "".join(f"\n  {d.get('field', '')}: {d.get('issue', d)}" if isinstance(d, dict) else f"\n  {d}"
                           for d in error.get("details") or [])
    except (ValueError, KeyError, TypeError):
        document, message = None, response.text[:500] or response.reason_phrase
    return CliError(f"HTTP {response.status_code} {message}", 2 if response.status_code == 400 else 1, document)


class Api:
    """One httpx client for the command; retries only what is safe to repeat (GETs, keyed POSTs)."""

    def __init__(self, conn: Connection, timeout: float = 30.0):
        import httpx

        self._httpx = httpx
        self.conn = conn
        self.http = httpx.Client(base_url=conn.url, timeout=timeout,
                                 headers={"X-Tenant-ID": conn.tenant, **conn.credential, "User-Agent": "maip-events-cli"})

    def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                headers: dict | None = None, retry: bool = True):
        params = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES or not retry
            try:
                response = self.http.request(method, path, params=params, json=body, headers=headers)
            except self._httpx.TransportError as err:
                if last:
                    raise CliError(f"cannot reach {self.conn.url}: {type(err).__name__}: {err}") from None
                time.sleep(0.5 * 2 ** attempt)
                continue
            # A 429 stored nothing, so even an unkeyed POST may repeat it; a 5xx might have stored the event.
            if (response.status_code == 429 or response.status_code in (502, 503, 504) and retry) and attempt < RETRIES:
                time.sleep(_retry_after(response.headers.get("Retry-After"), 0.5 * 2 ** attempt))
                continue
            if response.is_error:
                raise _api_error(response)
            return response
        raise AssertionError("unreachable")

    def pages(self, params: dict) -> Iterator[dict]:
        """GET /events pages, following next_token (sent with the same filters: the API checks they match)."""
        page = self.request("GET", EVENTS_PATH, params=params).json()
        yield page
        while page.get("next_token"):
            page = self.request("GET", EVENTS_PATH, params={**params, "next_token": page["next_token"]}).json()
            yield page


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value), 0.0), 10.0) if value else default
    except ValueError:
        return default


# ------------------------------------------------------------------------------------------------------ options

def add_parsers(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None],
                commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Adds `events emit|list|tail|export` to the parser and to `commands`; `common` adds the options every
    maip-events command takes."""
    commands.update(COMMANDS)
    events = sub.add_parser("events", help="emit, list, tail and export events through the HTTP API").add_subparsers(
        dest="action", required=True)

    emit_p = events.add_parser("emit", help="emit one event (POST /v1/observability/events)")
    emit_p.add_argument("--type", required=True, help="event type, e.g. agent.registered")
    emit_p.add_argument("--agent", help="agent_id")
    emit_p.add_argument("--resource", help="resource_id")
    emit_p.add_argument("--severity", help="info (default), warn or error")
    emit_p.add_argument("--metadata", help="a JSON object, or @FILE to read it from a file")
    emit_p.add_argument("--idempotency-key", help="a retry with the same key returns the first response (and is retried on failures)")

    list_p = events.add_parser("list", help="list events (a table; --json for the API's page)")
    _filters(list_p)
    list_p.add_argument("--limit", type=int, help="page size, 1-500 (API default 50)")
    list_p.add_argument("--order", choices=("desc", "asc"), help="desc (newest first, default) or asc")
    list_p.add_argument("--next-token", help="continue a previous page (give the same filters)")
    list_p.add_argument("--all", action="store_true", help="follow next_token to the end")

    tail_p = events.add_parser("tail", help="print new events as they arrive, oldest first (Ctrl-C stops); "
                                            "--json prints one JSON object per line")
    _filters(tail_p, window=False)
    tail_p.add_argument("--since", help="also print events from this ISO 8601 time on (default: only new ones)")
    tail_p.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    export_p = events.add_parser("export", help="export a window to a file, resumable (GET /events/export)")
    export_p.add_argument("--format", choices=("jsonl", "ocsf"), default="jsonl")
    export_p.add_argument("--out", required=True, help=f"file to write; progress is kept in FILE{STATE_SUFFIX} until done")
    export_p.add_argument("--order", choices=("desc", "asc"), help="desc (newest first, default) or asc")
    export_p.add_argument("--restart", action="store_true", help="start over instead of resuming an interrupted export")
    _filters(export_p)

    for parser in (emit_p, list_p, tail_p, export_p):
        group = parser.add_argument_group("connection")
        group.add_argument("--url", help="API base URL, e.g. http://127.0.0.1:3000 (env MAIP_URL)")
        group.add_argument("--tenant", help="X-Tenant-ID (env MAIP_TENANT)")
        group.add_argument("--api-key", help="X-API-Key (env MAIP_API_KEY)")
        group.add_argument("--token", help="a Bearer JWT instead of an API key (env MAIP_TOKEN)")
        common(parser)


def _filters(parser: argparse.ArgumentParser, window: bool = True) -> None:
    group = parser.add_argument_group("filters (passed to the API as query parameters)")
    group.add_argument("--q", help="qualifier search, e.g. 'type:agent.* -type:agent.updated severity:warn,error'")
    group.add_argument("--type", help="event_type: a type, namespace.* or a comma list")
    group.add_argument("--agent", help="agent_id")
    group.add_argument("--resource", help="resource_id")
    group.add_argument("--severity", help="info, warn, error or a comma list")
    if window:
        group.add_argument("--from", dest="time_from", help="inclusive start, ISO 8601 (UTC if no offset)")
        group.add_argument("--to", dest="time_to", help="inclusive end, ISO 8601")


def _query(args: argparse.Namespace) -> dict[str, Any]:
    query = {"q": args.q, "event_type": args.type, "agent_id": args.agent, "resource_id": args.resource,
             "severity": args.severity, "from": getattr(args, "time_from", None), "to": getattr(args, "time_to", None)}
    return {k: v for k, v in query.items() if v is not None}


# ----------------------------------------------------------------------------------------------------- commands

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str) -> Callable:
    def register(func: Callable[[argparse.Namespace, Api], int | None]) -> Callable:
        def run(args: argparse.Namespace) -> int:
            try:
                return func(args, Api(connection(args))) or 0
            except OSError as err:  # the output or state file (network errors arrive as CliError)
                return _report(args, CliError(f"{err.filename or 'output'}: {err.strerror or err}"))
            except CliError as err:
                return _report(args, err)

        COMMANDS[name] = run
        return func

    return register


def _report(args: argparse.Namespace, err: CliError) -> int:
    print(f"maip-events: {err.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(err.document, ensure_ascii=False))
    return err.exit_code


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end tail/export cleanly, even when started with SIGINT ignored (`cmd &` in a script)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, interrupt)


def _emit_json(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False), flush=True)


@_command("events emit")
def emit(args: argparse.Namespace, api: Api) -> int:
    body: dict[str, Any] = {"event_type": args.type}
    body.update({k: v for k, v in (("agent_id", args.agent), ("resource_id", args.resource),
                                   ("severity", args.severity)) if v is not None})
    if args.metadata is not None:
        body["metadata"] = _metadata(args.metadata)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    created = api.request("POST", EVENTS_PATH, body=body, headers=headers, retry=bool(args.idempotency_key)).json()
    if args.json:
        _emit_json(created)
    else:
        print(f"{created['id']}  {created['event_type']}  {created['severity']}  {created['created_at']}")
    return 0


def _metadata(text: str) -> dict:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as err:
            raise CliError(f"--metadata: cannot read {text[1:]}: {err.strerror}", 2) from None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise CliError(f"--metadata is not valid JSON: {err}", 2) from None
    if not isinstance(value, dict):
        raise CliError("--metadata must be a JSON object", 2)
    return value


@_command("events list")
def list_events(args: argparse.Namespace, api: Api) -> int:
    params = {**_query(args), "limit": args.limit, "order": args.order, "next_token": args.next_token}
    pages = api.pages(params) if args.all else iter([api.request("GET", EVENTS_PATH, params=params).json()])
    first = next(pages)
    items = list(first["items"])
    for page in pages:
        items.extend(page["items"])
    document = {**first, "items": items, "next_token": None} if args.all else first
    if args.json:
        _emit_json(document)
        return 0
    print(table(items) if items else "no events")
    footer = f"{len(items)} of {document.get('total', len(items))} event(s)"
    if document.get("next_token"):
        footer += f"; more: --all, or the same filters with --next-token {document['next_token']}"
    print(footer)
    return 0


def _cell(value: Any, width: int = 40) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(items: list[dict]) -> str:
    """The list as aligned columns (plain text, so it pipes and greps well)."""
    header = ("TIME", "TYPE", "SEVERITY", "AGENT", "RESOURCE", "EVENT ID")
    rows = [header] + [(_cell(i.get("timestamp")), _cell(i.get("event_type")), _cell(i.get("severity")),
                        _cell(i.get("agent_id")), _cell(i.get("resource_id")), str(i.get("event_id")))
                       for i in items]
    widths = [max(len(row[c]) for row in rows) for c in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)


def tail_line(item: dict) -> str:
    payload = item.get("payload") or {}
    text = (f"{item.get('timestamp')}  {_cell(item.get('event_type')):<28}  {_cell(item.get('severity')):<5}  "
            f"agent={_cell(item.get('agent_id'))}  resource={_cell(item.get('resource_id'))}  {item.get('event_id')}")
    return text + (f"  {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}" if payload else "")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"not an ISO 8601 time: {text!r}", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@_command("events tail")
def tail(args: argparse.Namespace, api: Api) -> int:
    """Polls `from=<newest seen - overlap>` and prints each event id once, oldest first. Without --since, what
    exists at start (within the overlap) is only remembered, not printed. --json: one JSON object per line."""
    if args.interval <= 0:
        raise CliError("--interval must be positive", 2)
    _stop_on_signals()
    now = datetime.now(timezone.utc)
    start = _parse_time(args.since) if args.since else now - TAIL_OVERLAP
    query, cursor = _query(args), start
    seen: dict[str, datetime] = {}
    first = True
    try:
        while True:
            fresh = [item for page in api.pages({**query, "from": _iso(cursor), "limit": 500})
                     for item in page["items"] if item["event_id"] not in seen]
            fresh.sort(key=lambda item: (item["timestamp"], item["event_id"]))
            for item in fresh:
                seen[item["event_id"]] = _parse_time(item["timestamp"])
                if args.since or not first:
                    print(json.dumps(item, ensure_ascii=False) if args.json else tail_line(item), flush=True)
            if seen:
                cursor = max(start, max(seen.values()) - TAIL_OVERLAP)
                seen = {k: t for k, t in seen.items() if t >= cursor}
            if first:
                print(f"maip-events: following events from {_iso(start if args.since else now)} "
                      f"(every {args.interval:g} s; Ctrl-C stops)", file=sys.stderr, flush=True)
                first = False
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `tail | head`: the reader is gone, which is a normal way to stop
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ------------------------------------------------------------------------------------------------------- export

def _write_state(path: Path, state: dict) -> None:
    """Replaces the state file atomically (a crash leaves the old or the new one, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def progress_text(events: int, total: int | None, size: int, run_events: int, run_bytes: int, elapsed: float) -> str:
    """What the progress bar shows beside the bar: events (of the total when known), bytes, and this run's rate."""
    rate = run_events / elapsed if elapsed > 0 else 0.0
    byte_rate = run_bytes / elapsed if elapsed > 0 else 0.0
    count = f"{events:,}/{total:,} events" if total is not None else f"{events:,} events"
    return f"{count} · {_human_bytes(size)} · {rate:,.0f} events/s · {_human_bytes(byte_rate)}/s"


class ExportProgress:
    """A rich progress bar on stderr when stderr is a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, total: int | None, events: int, size: int):
        self.total, self.events, self.size = total, events, size
        self.base_events, self.base_size, self.started = events, size, time.monotonic()
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("export"), BarColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                console=Console(file=sys.stderr), redirect_stdout=False, redirect_stderr=False)
            self.task = self.bar.add_task("export", total=total, completed=events, stats=self._text())

    def _text(self) -> str:
        return progress_text(self.events, self.total, self.size, self.events - self.base_events,
                             self.size - self.base_size, time.monotonic() - self.started)

    def __enter__(self) -> "ExportProgress":
        if self.bar:
            self.bar.start()
        return self

    def update(self, events: int, size: int) -> None:
        self.events, self.size = events, size
        if self.bar:
            if self.total is not None and events > self.total:  # events arrived since the count: grow the bar
                self.total = events
            self.bar.update(self.task, completed=events, total=self.total, stats=self._text())

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()


@_command("events export")
def export(args: argparse.Namespace, api: Api) -> int:
    """Writes each page, fsyncs, then records (next_token, file size) in FILE.partial-state. A re-run resumes:
    it cuts the file back to the recorded size (dropping a page written after the last record, or a torn
    line) and continues from the recorded token, so the result has every line exactly once."""
    out = Path(args.out)
    state_path = out.with_name(out.name + STATE_SUFFIX)
    query = {"format": args.format, **_query(args), "order": args.order}
    query = {k: v for k, v in query.items() if v is not None}
    identity = {"url": api.conn.url, "tenant": api.conn.tenant, "query": query}
    state = None if args.restart else _load_state(state_path)
    resumed = state is not None
    if state is not None:
        if state.get("identity") != identity:
            raise CliError(f"{state_path} belongs to an interrupted export with other options "
                           f"({json.dumps(state.get('identity'))}): re-run that command to finish it, or add --restart", 2)
        if not out.exists() or out.stat().st_size < state["bytes"]:
            raise CliError(f"{out} is missing or shorter than {state_path} records: add --restart to start over", 2)
    else:
        state = {"version": 1, "identity": identity, "next_token": None, "bytes": 0, "events": 0, "pages": 0}
        _write_state(state_path, state)  # first, so a crash from here on resumes (from the start)
    _stop_on_signals()
    show = sys.stderr.isatty()
    total = _count(api, query) if show else None
    try:
        with open(out, "ab") as f, ExportProgress(show, total, state["events"], state["bytes"]) as progress:
            f.truncate(state["bytes"])
            f.seek(state["bytes"])
            while True:
                params = {**query, "next_token": state["next_token"]}
                try:
                    response = api.request("GET", EXPORT_PATH, params=params)
                except CliError as err:
                    if resumed and err.exit_code == 2 and state["next_token"]:
                        err.message += f"\n(the next_token saved in {state_path} was refused: add --restart to start over)"
                    raise
                body = response.content
                if body and not body.endswith(b"\n"):
                    body += b"\n"
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
                state = {**state, "next_token": response.headers.get("X-Next-Token"), "bytes": f.tell(),
                         "events": state["events"] + body.count(b"\n"), "pages": state["pages"] + 1}
                progress.update(state["events"], state["bytes"])
                if not state["next_token"]:
                    break
                _write_state(state_path, state)
    except KeyboardInterrupt:
        print(f"maip-events: interrupted after {state['events']:,} events; run the same command again to resume",
              file=sys.stderr)
        return 130
    state_path.unlink(missing_ok=True)
    summary = {"out": str(out), "format": args.format, "events": state["events"], "bytes": state["bytes"],
               "pages": state["pages"], "resumed": resumed}
    if args.json:
        _emit_json(summary)
    else:
        print(f"exported {state['events']:,} events ({_human_bytes(state['bytes'])}, {state['pages']} page(s)) to {out}"
              + (" (resumed)" if resumed else ""))
    return 0


def _load_state(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read {path} ({err}): add --restart to start over", 2) from None
    return state if isinstance(state, dict) and state.get("version") == 1 else None


def _count(api: Api, query: dict) -> int | None:
    """The window's exact total from the list endpoint (for the progress bar); None if it cannot say."""
    params = {k: v for k, v in query.items() if k not in ("format", "order")}
    try:
        return int(api.request("GET", EVENTS_PATH, params={**params, "limit": 1}, retry=False).json()["total"])
    except (CliError, KeyError, TypeError, ValueError):
        return None
