"""The Lambda layer ships runtime code only: the local stack and the operator CLI live in tools/maip_events_local."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter where importing any development-only package fails, as in the deployed layer.
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
BLOCKED = ("moto", "yaml", "maip_events_local", "werkzeug", "flask")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("development-only package imported by the layer: " + name)
sys.meta_path.insert(0, Block())
import maip_events
for module in pkgutil.walk_packages(maip_events.__path__, "maip_events."):
    importlib.import_module(module.name)
print("ok")
"""


def test_every_layer_module_imports_without_development_packages():
    # Given an interpreter that refuses moto, pyyaml and the local-stack package
    # When every module of the layer package is imported
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], cwd=ROOT / "layers" / "common",
                            capture_output=True, text=True, timeout=120)
    # Then none of them needs one
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_layer_package_holds_no_local_stack_or_cli():
    package = ROOT / "layers" / "common" / "maip_events"
    assert not (package / "local").exists()
    assert not (package / "cli.py").exists()


def test_settings_and_aws_do_not_import_each_other_both_ways():
    settings = (ROOT / "layers/common/maip_events/settings.py").read_text()
    assert "maip_events import aws" not in settings and "maip_events.aws" not in settings
