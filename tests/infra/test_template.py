"""template.yaml as infrastructure: SAM's own validation, cfn-lint on the template *and* on its SAM translation,
a Docker-free `sam build`, and the structural rules of the design (tenant-scoped keys, streams, least privilege,
routes wired to thin handlers that exist).

Why the translation step: `sam validate --lint` and `cfn-lint template.yaml` (1.x) validate the SAM resources
against SAM schemas only. Neither notices a broken `!GetAtt` inside a function's stream or queue event, because
those intrinsics only become CloudFormation resources after the transform. Running cfn-lint on samtranslator's
output catches them.
"""
from __future__ import annotations

import ast
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.infra

TEMPLATE = "template.yaml"


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------

def _read_template(path: Path) -> dict[str, Any]:
    """The template as plain data, read by the project's own CloudFormation-aware reader."""
    from maip_events_local.template import parse_template

    return parse_template(path)


def _tool(name: str) -> str:
    """A console script of the running environment (the project's .venv under `make test`)."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` is not installed; run `make install`")
    return found


def _tool_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", **extra}


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template.get("Resources", {}).items() if r.get("Type") == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _python_versions(template: dict[str, Any]) -> set[str]:
    """Every pythonX.Y runtime the build needs: function runtimes (with Globals) and layer build methods."""
    runtimes = {template.get("Globals", {}).get("Function", {}).get("Runtime")}
    for resource in _resources(template, "AWS::Serverless::Function").values():
        runtimes.add(resource.get("Properties", {}).get("Runtime"))
    for resource in _resources(template, "AWS::Serverless::LayerVersion").values():
        runtimes.add(resource.get("Metadata", {}).get("BuildMethod"))
    return {m.group(1) for r in runtimes if isinstance(r, str) and (m := re.fullmatch(r"python(\d+\.\d+)", r))}


def _interpreter_dir(version: str) -> Path | None:
    """A directory holding a working `pythonX.Y` for `version`: this interpreter's, then PATH, then pyenv."""
    name = f"python{version}"

    def works(exe: str | Path) -> bool:
        try:
            out = subprocess.run([str(exe), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            return False
        return out.returncode == 0 and out.stdout.strip() == version

    here = Path(sys.executable).parent / name
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version and here.exists() and works(here):
        return here.parent
    on_path = shutil.which(name)
    if on_path and works(on_path):
        return Path(on_path).parent
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for exe in sorted(glob.glob(f"{pyenv_root}/versions/{version}*/bin/{name}"), reverse=True):
        if works(exe):
            return Path(exe).parent
    return None


def _elf_machine(path: Path) -> int | None:
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


ELF_MACHINE = {"arm64": 183, "x86_64": 62}  # EM_AARCH64, EM_X86_64
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # a function's code and all its layers, unzipped (250 MiB)


def _tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def _s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    """Local CodeUri/ContentUri/DefinitionUri paths replaced by s3:// URIs, as `sam package` would."""
    def fix(props: dict[str, Any]) -> None:
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = "s3://local-build/" + props[key].strip("/")

    for section in template.get("Globals", {}).values():
        if isinstance(section, dict):
            fix(section)
    for resource in template.get("Resources", {}).values():
        if isinstance(resource.get("Properties"), dict):
            fix(resource["Properties"])
    return template


class _NoManagedPolicies:
    """Managed-policy loader for samtranslator that never calls IAM (names stay as they are)."""

    def load(self) -> dict[str, str]:
        return {}


def _lint_report(matches: list[Any]) -> str:
    return "\n".join(str(m) for m in matches)


# --------------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template_path(repo_root: Path) -> Path:
    return repo_root / TEMPLATE


@pytest.fixture(scope="module")
def template(template_path: Path) -> dict[str, Any]:
    return _read_template(template_path)


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of the template (no AWS call)."""
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    try:
        return transform(_s3_uris(copy.deepcopy(template)), {}, _NoManagedPolicies())
    except InvalidDocumentException as error:
        causes = "\n".join(str(cause) for cause in error.causes)
        pytest.fail(f"the SAM transform rejects the template:\n{causes}", pytrace=False)


@pytest.fixture(scope="module")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in _resources(template, "AWS::Serverless::Function").items()}


@pytest.fixture(scope="module")
def events_table(template: dict[str, Any]) -> dict[str, Any]:
    tables = _resources(template, "AWS::DynamoDB::Table")
    assert "EventsTable" in tables, f"no AWS::DynamoDB::Table named EventsTable (tables: {sorted(tables)})"
    return tables["EventsTable"]["Properties"]


# --------------------------------------------------------------------------------------------------------------------
# tools: sam validate, cfn-lint, sam build
# --------------------------------------------------------------------------------------------------------------------

def test_sam_validate_with_lint_accepts_the_template(repo_root: Path, template_path: Path) -> None:
    # Given the project's template and samconfig.toml
    # When SAM validates it with its linter
    result = subprocess.run([_tool("sam"), "validate", "--lint", "--template", str(template_path)], cwd=repo_root,
                            env=_tool_env(), capture_output=True, text=True, timeout=300)
    # Then it is a valid SAM template with no lint finding
    assert result.returncode == 0, f"sam validate --lint failed:\n{result.stdout}\n{result.stderr}"


def test_cfn_lint_is_clean_on_the_sam_template(template_path: Path) -> None:
    from cfnlint.api import lint_file

    # Given the SAM template as written
    # When cfn-lint checks it (errors and warnings, as its CLI exit code does)
    matches = lint_file(template_path)
    # Then there is nothing to report
    assert not matches, f"cfn-lint {template_path.name}:\n{_lint_report(matches)}"


def test_cfn_lint_is_clean_on_the_translated_template(translated: dict[str, Any]) -> None:
    from cfnlint.api import lint

    # Given the CloudFormation that the SAM transform makes of the template
    assert translated.get("Resources"), "the SAM transform produced no resources"
    # When cfn-lint checks it (this is where broken !Ref/!GetAtt inside event sources show up)
    matches = lint(json.dumps(translated, indent=1), regions=["us-east-1"])
    # Then there is nothing to report (line numbers refer to the translated JSON)
    assert not matches, f"cfn-lint on the SAM-translated template:\n{_lint_report(matches)}"


@pytest.mark.slow
def test_sam_build_without_docker_builds_the_layer_and_every_function(
        repo_root: Path, template_path: Path, template: dict[str, Any], functions: dict[str, dict[str, Any]],
        tmp_path: Path) -> None:
    # Given a pythonX.Y interpreter for every runtime of the template, first on PATH
    versions = _python_versions(template)
    assert versions, "no python runtime found in the template"
    dirs = []
    for version in sorted(versions):
        found = _interpreter_dir(version)
        if found is None:
            pytest.skip(f"sam build needs python{version} on PATH and none was found "
                        f"(this interpreter, PATH, ~/.pyenv/versions/{version}*)")
        dirs.append(str(found))
    env = _tool_env(PATH=os.pathsep.join([*dirs, os.environ.get("PATH", "")]))
    build_dir, cache_dir = tmp_path / "build", tmp_path / "cache"

    # When `sam build` runs without a container, from a scratch directory (its .aws-sam/deps lands there too)
    started = time.monotonic()
    result = subprocess.run(
        [_tool("sam"), "build", "--template", str(template_path), "--build-dir", str(build_dir),
         "--cache-dir", str(cache_dir)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started

    # Then it succeeds
    assert result.returncode == 0, f"sam build failed after {elapsed:.0f}s:\n{result.stdout}\n{result.stderr}"
    assert (build_dir / "template.yaml").is_file()

    # And every layer carries the maip_events package, with native code for the layer's architecture
    layers = _resources(template, "AWS::Serverless::LayerVersion")
    assert layers, "the template has no AWS::Serverless::LayerVersion"
    for name, layer in layers.items():
        python_dir = build_dir / name / "python"
        assert (python_dir / "maip_events" / "__init__.py").is_file(), f"{name}: python/maip_events missing"
        arch = layer.get("Metadata", {}).get("BuildArchitecture", "x86_64")
        wrong = [str(so.relative_to(python_dir)) for so in python_dir.rglob("*.so")
                 if _elf_machine(so) not in (None, ELF_MACHINE[arch])]
        assert not wrong, f"{name}: native modules not built for {arch}: {wrong[:5]}"

    # And every function carries its handler module, and nothing heavy (dependencies live in the layer)
    layer_bytes = {name: _tree_bytes(build_dir / name) for name in layers}
    defaults = template.get("Globals", {}).get("Function", {})
    for name, props in functions.items():
        module = str(props.get("Handler", "app.lambda_handler")).rsplit(".", 1)[0].replace(".", "/") + ".py"
        built = build_dir / name
        assert (built / module).is_file(), f"{name}: {module} missing from the build"
        size = _tree_bytes(built)
        assert size < 1024 * 1024, f"{name}: {size} bytes built; dependencies belong in the layer"
        # And the function with its layers stays under Lambda's 250 MB unzipped limit (pyarrow is most of it)
        used = [ref["Ref"] for ref in [*defaults.get("Layers", []), *props.get("Layers", [])]
                if isinstance(ref, dict) and ref.get("Ref") in layer_bytes]
        unzipped = size + sum(layer_bytes[layer] for layer in used)
        assert unzipped < LAMBDA_UNZIPPED_LIMIT, (
            f"{name}: {unzipped / 1e6:.1f} MB unzipped with its layers {used} (Lambda's limit: 250 MB)")


# --------------------------------------------------------------------------------------------------------------------
# structure: tables
# --------------------------------------------------------------------------------------------------------------------

def _key(schema: list[dict[str, str]], kind: str) -> str | None:
    return next((k["AttributeName"] for k in schema if k.get("KeyType") == kind), None)


def test_events_are_partitioned_by_tenant_shard_and_sorted_by_event_id(events_table: dict[str, Any]) -> None:
    # Given the events table
    schema = events_table["KeySchema"]
    # Then its partition key is "<tenant>#<shard>" and its sort key the time-ordered event id
    assert _key(schema, "HASH") == "pk"
    assert _key(schema, "RANGE") == "event_id"


def _index_partitions(props: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(index name, partition key, projection type) of every secondary index of a table."""
    indexes = [*props.get("GlobalSecondaryIndexes", []), *props.get("LocalSecondaryIndexes", [])]
    return [(i["IndexName"], _key(i["KeySchema"], "HASH"), i.get("Projection", {}).get("ProjectionType", ""))
            for i in indexes]


def test_every_events_index_is_partitioned_by_a_tenant_prefixed_key(events_table: dict[str, Any]) -> None:
    # Given the secondary indexes of the events table
    indexes = _index_partitions(events_table)
    # Then each one is keyed by a *_pk attribute ("tenant#shard#agent", "tenant#shard#type", ...), built by
    # store.events.to_item with the tenant first: no query crosses tenants
    offenders = [f"{name}: {key}" for name, key, _ in indexes if not (key or "").endswith("_pk")]
    assert not offenders, f"EventsTable indexes not keyed by a tenant-prefixed *_pk attribute: {offenders}"


def test_other_tenant_tables_only_project_keys_in_indexes_that_cross_tenants(template: dict[str, Any]) -> None:
    # Given every table whose items belong to a tenant (partition key tenant_id)
    tables = {name: r["Properties"] for name, r in _resources(template, "AWS::DynamoDB::Table").items()
              if _key(r["Properties"]["KeySchema"], "HASH") == "tenant_id"}
    # When an index is not keyed by the tenant (an operator lookup by a global id, say)
    offenders = [f"{table}.{name}: {partition} ({projection})"
                 for table, props in tables.items() for name, partition, projection in _index_partitions(props)
                 if not (partition or "").startswith("tenant_") and projection != "KEYS_ONLY"]
    # Then it projects nothing but keys, so it can name an item's tenant but never hand out another tenant's data
    assert not offenders, f"cross-tenant indexes projecting data (make them tenant_* keyed or KEYS_ONLY): {offenders}"


def test_events_table_streams_new_images_keeps_backups_and_expires_items(events_table: dict[str, Any]) -> None:
    # Given the events table
    # Then its stream carries the new image for the consumers
    assert events_table.get("StreamSpecification", {}).get("StreamViewType") == "NEW_IMAGE"
    # And point-in-time recovery is on
    assert events_table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True
    # And items expire through a TTL attribute that is enabled
    ttl = events_table.get("TimeToLiveSpecification", {})
    assert ttl.get("Enabled") is True and ttl.get("AttributeName"), f"TTL not enabled: {ttl}"


# --------------------------------------------------------------------------------------------------------------------
# structure: IAM, functions, API
# --------------------------------------------------------------------------------------------------------------------

def _policy_statements(translated: dict[str, Any]):
    """(resource id, statement) for every inline IAM statement of the translated template."""
    for name, resource in translated["Resources"].items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        documents = []
        if kind == "AWS::IAM::Role":
            documents = [p.get("PolicyDocument", {}) for p in props.get("Policies", [])]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props.get("PolicyDocument", {})]
        for document in documents:
            for statement in _as_list(document.get("Statement", [])):
                yield name, statement


def test_no_function_policy_grants_every_action_or_every_dynamodb_resource(translated: dict[str, Any]) -> None:
    # Given every inline IAM statement the functions get (SAM policy templates expanded)
    statements = list(_policy_statements(translated))
    assert statements, "no IAM statement found: did the SAM transform run?"
    offenders = []
    for role, statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in _as_list(statement.get("Action", []))]
        resources = _as_list(statement.get("Resource", []))
        # Then no statement allows Action "*" or "dynamodb:*"
        if "*" in actions or "dynamodb:*" in actions:
            offenders.append(f"{role}: Action {actions}")
        # And no DynamoDB statement applies to Resource "*"
        elif any(a.startswith("dynamodb:") for a in actions) and "*" in resources:
            offenders.append(f"{role}: {actions} on Resource '*'")
    assert not offenders, "over-broad IAM statements:\n" + "\n".join(offenders)


def test_every_function_runs_on_the_runtime_and_architecture_its_layers_are_built_for(
        template: dict[str, Any], functions: dict[str, dict[str, Any]]) -> None:
    # Given each function (Globals applied) and the layers it uses
    defaults = template.get("Globals", {}).get("Function", {})
    layers = _resources(template, "AWS::Serverless::LayerVersion")
    mismatches = []
    for name, props in functions.items():
        runtime = props.get("Runtime", defaults.get("Runtime"))
        arch = _as_list(props.get("Architectures", defaults.get("Architectures", ["x86_64"])))[0]
        for ref in [*defaults.get("Layers", []), *props.get("Layers", [])]:
            layer_id = ref.get("Ref") if isinstance(ref, dict) else None
            if layer_id not in layers:
                continue
            layer = layers[layer_id]
            metadata = layer.get("Metadata", {})
            built_for = (metadata.get("BuildMethod"), metadata.get("BuildArchitecture", "x86_64"))
            compatible = layer["Properties"]
            # Then the layer is built with that runtime for that architecture (native wheels such as
            # pydantic-core only import on the CPU they were built for), and declares both compatible
            if built_for != (runtime, arch) or runtime not in compatible.get("CompatibleRuntimes", [runtime]) \
                    or arch not in compatible.get("CompatibleArchitectures", [arch]):
                mismatches.append(f"{name} ({runtime}, {arch}) uses {layer_id} built for {built_for}")
    assert not mismatches, "\n".join(mismatches)


def test_every_function_has_a_description(template: dict[str, Any]) -> None:
    # Given every function of the template
    found = {**_resources(template, "AWS::Serverless::Function"), **_resources(template, "AWS::Lambda::Function")}
    assert found
    # Then each one says what it does
    missing = [name for name, r in found.items() if not str(r.get("Properties", {}).get("Description", "")).strip()]
    assert not missing, f"functions without a Description: {missing}"


def test_every_http_api_stage_is_throttled(translated: dict[str, Any]) -> None:
    # Given every HTTP API stage the transform creates (explicit APIs and any implicit one)
    stages = _resources(translated, "AWS::ApiGatewayV2::Stage")
    assert stages, "no HTTP API stage in the translated template"
    # Then each one has a default burst and rate limit
    for name, stage in stages.items():
        settings = stage["Properties"].get("DefaultRouteSettings", {})
        for limit in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
            value = settings.get(limit)
            assert isinstance(value, (int, float)) and value > 0, f"{name}: {limit} is {value!r}"


def test_outputs_give_the_api_url(template: dict[str, Any]) -> None:
    # Given the outputs of the stack
    outputs = template.get("Outputs", {})
    # Then ApiUrl is one of them, built from an HTTP API of the template
    assert "ApiUrl" in outputs, f"Outputs: {sorted(outputs)}"
    value = json.dumps(outputs["ApiUrl"].get("Value"))
    apis = _resources(template, "AWS::Serverless::HttpApi")
    assert any(api in value for api in apis), f"ApiUrl does not point at an HTTP API of the template: {value}"


def _handler_file(repo_root: Path, props: dict[str, Any]) -> tuple[Path, str]:
    code_uri = str(props.get("CodeUri", ""))
    module, _, attribute = str(props.get("Handler", "")).rpartition(".")
    return repo_root / code_uri / (module.replace(".", "/") + ".py"), attribute


def _defines(source: str, name: str) -> bool:
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def test_every_route_points_at_a_handler_module_that_exists(
        repo_root: Path, template: dict[str, Any], functions: dict[str, dict[str, Any]]) -> None:
    # Given every HttpApi route of the template
    apis = set(_resources(template, "AWS::Serverless::HttpApi"))
    routes: dict[tuple[str, str], str] = {}
    for name, props in functions.items():
        for event_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            route = event.get("Properties", {})
            key = (str(route.get("Method", "")).upper(), str(route.get("Path", "")))
            # Then the route is declared once, on an API of the template (not on an implicit, unthrottled one)
            assert key not in routes, f"{key} is routed to both {routes[key]} and {name}"
            routes[key] = name
            api_id = route.get("ApiId")
            assert api_id in [{"Ref": api} for api in apis], f"{name}.{event_name}: ApiId {api_id}"
            # And its function's code is a functions/<dir>/ folder whose handler module exists and defines the handler
            code_uri = str(props.get("CodeUri", ""))
            assert re.fullmatch(r"functions/[A-Za-z0-9_]+/?", code_uri), f"{name}: CodeUri {code_uri!r}"
            path, attribute = _handler_file(repo_root, props)
            assert path.is_file(), f"{name}: {path.relative_to(repo_root)} does not exist"
            assert _defines(path.read_text(encoding="utf-8"), attribute), f"{path}: no top-level {attribute}"
    assert routes, "the template has no HttpApi route"


def test_every_handler_folder_is_deployed_by_the_template(
        repo_root: Path, functions: dict[str, dict[str, Any]]) -> None:
    # Given the handler modules on disk and the code folders of the template's functions
    on_disk = {p.parent.name for p in (repo_root / "functions").glob("*/app.py")}
    deployed = {str(props.get("CodeUri", "")).strip("/").split("/")[-1] for props in functions.values()}
    # Then no handler is left out of the template
    orphans = sorted(on_disk - deployed)
    assert not orphans, f"functions/*/app.py with no function in the template: {orphans}"


def _code_lines(source: str) -> int:
    """Lines that are code: no blank lines, comments or the module docstring."""
    tree = ast.parse(source)
    skip: set[int] = set()
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if number not in skip and line.strip() and not line.strip().startswith("#"))


MAX_HANDLER_LINES = 25


def test_every_handler_module_is_thin(repo_root: Path) -> None:
    # Given every functions/*/app.py
    handlers = sorted((repo_root / "functions").glob("*/app.py"))
    assert handlers, "no functions/*/app.py"
    # When we count its lines of code
    sizes = {str(p.relative_to(repo_root)): _code_lines(p.read_text(encoding="utf-8")) for p in handlers}
    # Then each one is a thin wrapper; the behaviour lives in the layer package
    fat = {path: lines for path, lines in sizes.items() if lines >= MAX_HANDLER_LINES}
    assert not fat, f"handlers with {MAX_HANDLER_LINES}+ lines of code (move the logic into maip_events): {fat}"


# --------------------------------------------------------------------------------------------------------------------
# consumers: stream readers and queue sources
# --------------------------------------------------------------------------------------------------------------------

def _event_sources(template: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, event.get("Properties", {}))
            for name, function in _resources(template, "AWS::Serverless::Function").items()
            for event in (function.get("Properties", {}).get("Events") or {}).values() if event.get("Type") == kind]


def test_the_events_stream_has_at_most_two_lambda_readers(template: dict[str, Any]) -> None:
    # Given every DynamoDB event source of the template
    readers = [name for name, props in _event_sources(template, "DynamoDB")
               if props.get("Stream") == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}]
    # Then DynamoDB Streams' limit of two readers per shard holds, and the dispatcher is one of them
    assert len(readers) <= 2 and "DispatchFunction" in readers, readers


def test_every_queue_source_caps_its_concurrency_so_deliveries_never_starve_ingest(template: dict[str, Any]) -> None:
    # Given every SQS event source of the template
    sources = _event_sources(template, "SQS")
    # Then each has a MaximumConcurrency (2..1000) and reports per-message failures
    assert sources
    for name, props in sources:
        assert 2 <= int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 0)) <= 1000, name
        assert "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []), name


def test_the_stream_reader_that_fans_out_never_calls_out(repo_root: Path) -> None:
    # Given the dispatcher's code
    source = (repo_root / "layers/common/maip_events/dispatch/stream.py").read_text()
    # Then it only queues work: no HTTP client, no destination senders
    assert "maip_events.http" not in source and "destinations" not in source
