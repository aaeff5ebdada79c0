"""The balance core is pure: importable without Panda3D, OpenXR or pyserial,
and its modules import nothing that does I/O, reads a clock or starts threads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vrbalance.balance as balance

BLOCKED = ("panda3d", "direct", "xr", "serial")
# Modules whose mere import by the core would let it do I/O, read a clock or
# start threads.
FORBIDDEN_IMPORTS = {
    "time", "datetime", "threading", "multiprocessing", "asyncio", "os", "io",
    "pathlib", "socket", "subprocess", "tomllib", "shutil", "sqlite3", "random",
    "panda3d", "direct", "xr", "serial", "vrbalance.devices", "vrbalance.config",
    "vrbalance.world", "vrbalance.xr", "vrbalance.realtime", "vrbalance.sessions",
    "vrbalance.resources", "vrbalance.clock",
}  # fmt: skip


def test_imports_with_engines_and_serial_blocked() -> None:
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        "import vrbalance.balance as b\n"
        "from vrbalance.balance import sway_metrics, BalanceEstimator, make_stance\n"
        "import numpy as np\n"
        "m = sway_metrics(np.cumsum(np.ones((100, 2)), axis=0) * 1e-3, 100.0)\n"
        "leaked = sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{BLOCKED!r} and sys.modules[n] is not None)\n"
        "print('ok', leaked)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok []"


def test_core_modules_import_nothing_impure() -> None:
    folder = Path(balance.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                hits = [f for f in FORBIDDEN_IMPORTS if name == f or name.startswith(f + ".")]
                assert not hits, f"{path.name} imports {name}"


def test_public_api_is_exported() -> None:
    for name in ("sway_metrics", "SwayMetrics", "BalanceEstimator", "make_stance", "Body",
                 "PlateGeometry", "cop_six_axis", "cop_cells", "equilibrium_score"):  # fmt: skip
        assert name in balance.__all__
        assert getattr(balance, name) is not None
    assert sorted(balance.__all__) == sorted(set(balance.__all__))
