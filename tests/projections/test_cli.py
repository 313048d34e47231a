"""``smsledger projections``, ``smsledger report`` and the HTML report in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.runtime import Runtime
from tests.projections.helpers import projector
from tests.projections.traffic import plans, run_rounds
from tests.support.servers import require_or_skip

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def cli_env(runtime: Runtime, tmp_path: Path) -> dict[str, str]:
    settings = runtime.settings
    assert settings.master_key is not None
    return {
        "SMSLEDGER_DATABASE_URL": settings.resolved_database_url,
        "SMSLEDGER_MASTER_KEY": settings.master_key.get_secret_value(),
        "SMSLEDGER_DATA_DIR": str(tmp_path),
        # rich sizes its tables from COLUMNS when the output is not a terminal.
        "COLUMNS": "200",
    }


@pytest.fixture
def projected(runtime: Runtime) -> Runtime:
    run_rounds(runtime.ledger, plans(80, seed=13))
    built = projector(runtime)
    built.catch_up()
    built.close()
    return runtime


def test_status_lists_positions_and_lag(projected: Runtime, tmp_path: Path) -> None:
    end = projected.store.max_position()
    result = CliRunner().invoke(
        main, ["projections", "status"], env=cli_env(projected, tmp_path), terminal_width=120
    )
    assert result.exit_code == 0, result.output
    for name in ("messages", "performance", "latency"):
        line = next(line for line in result.output.splitlines() if f" {name} " in line)
        assert f" {end} " in line
        assert " 0 " in line, "caught-up projections have no lag"


def test_rebuild_command_swaps_in(projected: Runtime, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["projections", "rebuild", "latency", "--batch-size", "50"],
        env=cli_env(projected, tmp_path),
        terminal_width=120,
    )
    assert result.exit_code == 0, result.output
    assert "latency:" in result.output
    assert "swapped in" in result.output


def test_rebuild_command_rejects_unknown_name(projected: Runtime, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["projections", "rebuild", "nope"], env=cli_env(projected, tmp_path)
    )
    assert result.exit_code == 2
    assert "nope" in result.output


def test_report_prints_carrier_table(projected: Runtime, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "--from", "2026-03-02", "--to", "2026-03-03", "--tenant", "acme"],
        env=cli_env(projected, tmp_path),
        terminal_width=160,
    )
    assert result.exit_code == 0, result.output
    for carrier in ("alpha", "beta", "gamma"):
        assert carrier in result.output


def test_report_piped_keeps_whole_headers(projected: Runtime, tmp_path: Path) -> None:
    env: dict[str, str | None] = {**cli_env(projected, tmp_path), "COLUMNS": None}
    result = CliRunner().invoke(
        main, ["report", "--from", "2026-03-02", "--to", "2026-03-03", "--tenant", "acme"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "delivered" in result.output


def test_report_rejects_reversed_range(projected: Runtime, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "--from", "2026-03-03", "--to", "2026-03-02"],
        env=cli_env(projected, tmp_path),
    )
    assert result.exit_code == 2
    assert "after --from" in result.output


def test_html_report_renders_in_chromium(projected: Runtime, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        require_or_skip("chromium is not installed: apt-get install -y chromium")
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", "--from", "2026-03-02T00:00Z", "--to", "2026-03-03", "--html", str(page)],
        env=cli_env(projected, tmp_path),
        terminal_width=160,
    )
    assert result.exit_code == 0, result.output

    text = page.read_text()
    # Nothing the browser would fetch: no external source, link, import or script.
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text) == []
    assert "<link" not in text
    assert "<script" not in text
    assert re.findall(r"url\((?!#)", text) == [], "only references inside the page"
    rendered = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    for chart in ("delivery-rate", "latency", "failure-causes"):
        start = rendered.index(f'id="{chart}"')
        assert "<svg" in rendered[start : start + 2000], chart
    assert rendered.count("<svg") == 3
    for carrier in ("alpha", "beta", "gamma"):
        assert f"<td>{carrier}</td>" in rendered
        # Chart text is kept as text, so the legend names each carrier.
        assert rendered.count(carrier) >= 3
