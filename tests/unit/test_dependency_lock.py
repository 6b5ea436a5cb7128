"""What is deployed is what was tested: the layer's requirements.txt (what `sam build` installs) is a hash-locked
list whose every version is the one installed in this test environment and pinned in the dev lock."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER_LOCK = ROOT / "layers" / "common" / "requirements.txt"
LAYER_IN = ROOT / "layers" / "common" / "requirements.in"
DEV_LOCK = ROOT / "requirements-dev.lock"


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for every requirement of a lock that applies to this interpreter."""
    text = path.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, options = line.partition(" --hash")
        requirement = Requirement(spec.strip())
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", f"{path.name}: {line} is not pinned"
        hashes = re.findall(r"sha256:[0-9a-f]{64}", options)
        assert hashes, f"{path.name}: {requirement.name} has no hash"
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonicalize_name(requirement.name)] = (next(iter(requirement.specifier)).version, hashes)
    return pins


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_every_layer_dependency_is_pinned_with_hashes_to_the_version_the_tests_run():
    # Given the layer's lock (what `sam build` installs into the Lambda layer)
    layer = locked(LAYER_LOCK)
    # Then it is not empty, and each pinned version is exactly the one installed here
    assert layer, "layers/common/requirements.txt pins nothing"
    mismatches = {name: (version, installed(name)) for name, (version, _) in layer.items() if installed(name) != version}
    assert not mismatches, f"layer pin != tested version (run `make install`, or `make lock`): {mismatches}"


def test_the_layer_lock_agrees_with_the_dev_lock_and_covers_every_runtime_dependency():
    layer, dev = locked(LAYER_LOCK), locked(DEV_LOCK)
    # Then every layer pin is the dev lock's pin, with the same hashes
    assert {n: v for n, (v, _) in layer.items()} == {n: dev[n][0] for n in layer}
    assert all(set(layer[n][1]) <= set(dev[n][1]) for n in layer)
    # And every top-level runtime dependency of the layer is locked
    top_level = [Requirement(line) for line in LAYER_IN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert {canonicalize_name(r.name) for r in top_level} <= set(layer)
