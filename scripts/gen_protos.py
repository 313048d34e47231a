"""Generate the Python gRPC code and type stubs from protos/ into a folder.

Usage: python scripts/gen_protos.py [OUTPUT_ROOT]   (default: src)

The generated package mirrors the proto package: protos/ledger/v1/*.proto
becomes OUTPUT_ROOT/ledger/v1/*_pb2*.py(i). tests/test_protos_fresh.py runs
this into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def _googleapis_include() -> str:
    """Return the folder holding google/rpc/*.proto from googleapis-common-protos."""
    import google.rpc

    return str(Path(next(iter(google.rpc.__path__))).parent.parent)


def generate(output_root: Path) -> None:
    """Run protoc for every .proto file under protos/ into ``output_root``."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"-I{_googleapis_include()}",
        f"--python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src"
    generate(out)
