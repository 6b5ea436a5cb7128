"""`maip-events verify FILE` as a user runs it: the installed console script in a subprocess, on files."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from integrity_fixtures import BASE_TIME, SigningKey, TenantLog, iso, signing_key, write_lines

WINDOW = (iso(BASE_TIME + timedelta(seconds=10)), iso(BASE_TIME + timedelta(seconds=29)))


@pytest.fixture(scope="module")
def log() -> TenantLog:
    return TenantLog(40)


def maip_events(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "maip-events"
    command = [str(script)] if script.exists() else [shutil.which("maip-events") or "maip-events"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_an_intact_export_exits_0_with_a_one_line_summary(tmp_path, log):
    # Given an export with two events expired by retention
    write_lines(tmp_path / "audit.jsonl", log.export(window=WINDOW, expired=frozenset({14, 15})))
    # When the user verifies it offline
    done = maip_events("verify", "audit.jsonl", cwd=tmp_path)
    # Then it passes, saying what was proven
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "OK: 18 events, leaves 10..29 of tree 40, window [2026-11-01T00:00:10.000Z, 2026-11-01T00:00:29.000Z], "
        "checkpoint signed by kid maip-integrity-test-1 (the public key in the export's trailer), 2 expired by retention"]


def test_a_deleted_line_exits_1_naming_the_line_and_the_kind(tmp_path, log):
    lines = log.export(window=WINDOW)
    del lines[7]
    write_lines(tmp_path / "audit.jsonl", lines)
    done = maip_events("verify", "audit.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("FAILED: line 8: missing: leaf 22 missing between line 7 and line 8"), done.stderr


def test_a_pinned_public_key_catches_a_re_signed_export_in_json(tmp_path, log):
    # Given an export whose checkpoint and trailer key were replaced by an attacker's (same kid)
    attacker = SigningKey(signing_key().kid)
    lines = log.export(window=WINDOW)
    trailer = json.loads(lines[-1])
    trailer["integrity"].update(checkpoint=log.checkpoint(40, key=attacker), public_key=attacker.jwk())
    write_lines(tmp_path / "audit.jsonl", lines[:-1] + [json.dumps(trailer)])
    (tmp_path / "maip.jwk").write_text(json.dumps(signing_key().jwk()))
    # When verified with the log's real public key
    done = maip_events("verify", "audit.jsonl", "--public-key", "maip.jwk", "--json", cwd=tmp_path)
    # Then the signature fails, in one JSON document
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["failure"]["line"] == 21 and report["failure"]["kind"] == "bad signature"


def test_usage_errors_exit_2(tmp_path):
    done = maip_events("verify", cwd=tmp_path)
    assert done.returncode == 2 and "FILE or --url" in done.stderr
