"""`maip-events serve`: embedded DynamoDB (moto), tables, queues and buckets from template.yaml, the gateway, the
stream poller and the scheduler of scheduled functions, plus a ready API key for tenant `demo`."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from maip_events import settings

log = logging.getLogger("maip_events_local")


def _configure_environment(dynamodb_endpoint: str) -> None:
    os.environ["MAIP_LOCAL"] = "1"
    os.environ["MAIP_DYNAMODB_ENDPOINT"] = dynamodb_endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto streams with recent botocore
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    settings.reset()


def create_resources() -> None:
    """Tables (streams and TTL on), queues (with their dead-letter redrive) and buckets as template.yaml says."""
    from maip_events import aws
    from maip_events_local.template import bucket_names, local_name, queue_definitions, table_definitions

    dynamodb = aws.dynamodb()
    existing = set(dynamodb.list_tables()["TableNames"])
    for definition in table_definitions():
        ttl = definition.pop("TimeToLiveSpecification", None)
        if definition["TableName"] in existing:
            continue
        dynamodb.create_table(**definition)
        if ttl:
            dynamodb.update_time_to_live(TableName=definition["TableName"], TimeToLiveSpecification=ttl)
    sqs = aws.client("sqs")
    queues = queue_definitions()
    urls = {q["logical_id"]: sqs.create_queue(QueueName=q["QueueName"], Attributes=q["Attributes"])["QueueUrl"] for q in queues}
    for queue in queues:
        if queue["dead_letter_target"] in urls:
            target = sqs.get_queue_attributes(QueueUrl=urls[queue["dead_letter_target"]], AttributeNames=["QueueArn"])
            policy = {"deadLetterTargetArn": target["Attributes"]["QueueArn"], "maxReceiveCount": queue["max_receive_count"]}
            sqs.set_queue_attributes(QueueUrl=urls[queue["logical_id"]], Attributes={"RedrivePolicy": json.dumps(policy)})
    log.debug("created %s", [local_name(q["logical_id"]) for q in queues])
    s3 = aws.client("s3")
    for bucket in bucket_names():
        s3.create_bucket(Bucket=bucket)  # idempotent for its owner in us-east-1
    create_kms_keys()


def create_kms_keys() -> None:
    """KMS keys of template.yaml (the checkpoint signing key) in moto's KMS, under their local alias."""
    from maip_events import aws
    from maip_events_local.template import kms_key_definitions

    keys = kms_key_definitions()
    if not keys:
        return
    kms = aws.client("kms")
    existing = {a["AliasName"] for a in kms.list_aliases().get("Aliases", [])}
    for key in keys:
        if key["alias"] not in existing:
            key_id = kms.create_key(**key["create"])["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=key["alias"], TargetKeyId=key_id)


def _check_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Fail with one clear line instead of a traceback (or, for moto, a silent hang) when a port is taken."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise OSError(f"{what} port {host}:{port} is already in use (choose another with {flag}, or 0 for any free port)") from None


class EmbeddedAws:
    """The embedded DynamoDB/SQS (moto's server, with moto_patches) in a process of its own.

    Why a process: moto is pure Python. Sharing a process, and so a GIL, with the gateway and the stream poller
    (which parse every stream record and queue message they fetch), every request to the embedded DynamoDB also
    waited for them. On its own it serves emits, raw writes and the consumers' reads with a whole interpreter.
    Every write, queue operation and stream read still goes through this one moto backend, so moto_patches' locks
    keep DynamoDB's and SQS's atomicity exactly as before."""

    def __init__(self, port: int, changes: Any, tracked: set[str]):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # the parent already runs threads: no fork
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_embedded_aws, args=(child, port, changes, tracked), daemon=True,
                                       name="maip-embedded-aws")
        self.process.start()
        child.close()
        try:
            outcome, value = self._conn.recv()
        except EOFError:
            raise RuntimeError("the embedded DynamoDB did not start (see the log above)") from None
        if outcome != "ok":
            raise OSError(value)
        self.endpoint = f"http://127.0.0.1:{value}"

    def stop(self) -> None:
        self._conn.close()  # the child stops its server when its end of the pipe closes
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _embedded_aws(conn: Any, port: int, changes: Any, tracked: set[str]) -> None:
    """The embedded AWS process: moto's threaded server until the parent closes the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the stack's stdout carries only the parent's ready line
    from moto.server import ThreadedMotoServer

    from maip_events_local import moto_patches

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    moto_patches.install()  # keeps emits and queries fast as the embedded tables grow
    moto_patches.track_changes(changes, tracked)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        moto.start()
    except Exception as error:  # noqa: BLE001 - reported to the parent in one line
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ok", moto.get_host_and_port()[1]))
    try:
        conn.recv()  # nothing is ever sent: returns (EOFError) when the parent closes the pipe or exits
    except (EOFError, OSError):
        pass
    moto.stop()


def serve(host: str = "127.0.0.1", port: int = 3000, dynamodb_port: int = 8000, as_json: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from maip_events_local.gateway import Gateway
    from maip_events_local.template import scheduled_functions, stream_consumers
    from maip_events_local.workers import WorkerPool

    _check_port_free("127.0.0.1", dynamodb_port, "Embedded DynamoDB", "--dynamodb-port")
    try:  # bound first: a taken API port fails before anything else starts
        gateway = Gateway(host, port, before_route=_rate_limiter())
    except OSError as error:
        raise OSError(f"API port {host}:{port} is not available ({error.strerror}; choose another with --port, or 0)") from None
    # Handlers run in worker processes (concurrently, like Lambda containers), spawned once the environment is
    # set (they inherit it); the poller in this process feeds them stream and queue batches.
    consumers, scheduled = stream_consumers(), scheduled_functions()
    handlers = {route.function for route in gateway.routes} | {consumer.function for consumer in consumers} | set(scheduled)
    pool = WorkerPool(preload=sorted(handlers, key=lambda f: f.logical_id))
    names = settings.get_settings()
    embedded = poller = scheduler = None
    try:
        # Writes to the keys and tenants tables bump the pool's change counter (workers cache those reads).
        embedded = EmbeddedAws(dynamodb_port, pool.changes, {names.keys_table, names.tenants_table})
        endpoint = embedded.endpoint
        _configure_environment(endpoint)
        create_resources()

        from maip_events.auth.keys import create_api_key
        from maip_events_local.streams import StreamPoller

        pool.prewarm()
        gateway.invoke = pool.invoke
        key = create_api_key(tenant_id="demo", scopes=["*"], name="local demo key")
        # Stream and queue consumers run in the worker pool too (each worker runs one event at a time, like a
        # container), so their CPU does not compete, under one GIL, with the gateway and the poller.
        poller = StreamPoller(consumers=consumers, invoke=lambda function, event, instance=0: pool.invoke(function, event))
        poller.start()
        from maip_events_local.schedules import Scheduler

        scheduler = Scheduler(scheduled, invoke=lambda function, event: pool.invoke(function, event))
        scheduler.start()
        url = f"http://{host}:{gateway.server_address[1]}"
        _announce(url, endpoint, key, as_json)

        stopping = threading.Event()

        def shutdown(*_: Any) -> None:
            if not stopping.is_set():
                stopping.set()
                threading.Thread(target=gateway.shutdown, daemon=True).start()

        signal.signal(signal.SIGINT, shutdown)
        signal.signal(signal.SIGTERM, shutdown)
        if hasattr(signal, "SIGUSR1"):  # fault injection for tests: stop or restart the stream poller
            # Off the signal handler: stop() waits for a batch in flight, and neither may nest in a handler.
            signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=poller.stop, daemon=True).start())
            signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=poller.start, daemon=True).start())
        gateway.serve_forever(poll_interval=0.2)
    finally:
        if scheduler is not None:
            scheduler.stop(timeout=5)
        if poller is not None:
            poller.stop()
        gateway.server_close()
        pool.close()
        if embedded is not None:
            embedded.stop()
        print("MAIP Events local stack stopped", file=sys.stderr, flush=True)


def _rate_limiter() -> Any:
    try:
        from maip_events_local.ratelimit import from_environment
    except ImportError:
        return None
    return from_environment()


def _announce(url: str, endpoint: str, key: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"url": url, "dynamodb_endpoint": endpoint, "tenant_id": key["tenant_id"],
                          "api_key": key["api_key"], "key_id": key["key_id"]}), flush=True)
        # Exactly one JSON document on stdout: anything written later (handler logs print to stdout) goes to
        # stderr, so a caller that reads only the first line can never block the stack on a full pipe.
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        return
    auth = f'-H "X-API-Key: {key["api_key"]}" -H "X-Tenant-ID: demo"'
    print(f"""
MAIP Events local stack is up (Ctrl-C to stop)

  API                {url}
  Swagger UI         {url}/v1/docs
  Console            {url}/console
  Embedded DynamoDB  {endpoint}   (tables from template.yaml, streams on)
  Tenant             demo
  API key            {key["api_key"]}   (scopes: *)

Try it:

  curl -s -X POST {url}/v1/observability/events {auth} \\
       -H "Content-Type: application/json" \\
       -d '{{"event_type":"agent.registered","agent_id":"agent-1","metadata":{{"region":"eu-west-1"}}}}'

  curl -s "{url}/v1/observability/events?limit=10" {auth}

More keys: maip-events keys create --tenant acme --scopes events:write,events:read --dynamodb-endpoint {endpoint}
""", flush=True)
