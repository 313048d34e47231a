"""The committed generated code matches the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "src" / "ledger" / "v1"
    generated = sorted(
        p.relative_to(tmp_path / "ledger" / "v1")
        for p in (tmp_path / "ledger" / "v1").glob("*_pb2*")
    )
    assert generated, "protoc produced nothing"
    stale = [
        str(name)
        for name in generated
        if (committed / name).read_text() != (tmp_path / "ledger" / "v1" / name).read_text()
    ]
    assert not stale, f"regenerate with `make proto`: {stale} differ from protos/"
