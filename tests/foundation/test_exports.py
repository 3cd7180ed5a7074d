"""Each package's ``__init__`` is its public API: a sorted ``__all__`` of names that exist, and
data flows one way (scheduler → detectors, delivery; never back, never sideways)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["scheduler", "detectors", "delivery"])
def test_all_is_sorted_and_every_name_exists(package: str) -> None:
    module = importlib.import_module(package)

    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert module.__all__ == sorted(module.__all__, key=key)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("detectors", {"scheduler", "delivery"}), ("delivery", {"scheduler", "detectors"})],
)
def test_data_flows_one_way(package: str, forbidden: set[str]) -> None:
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path} imports {name}"


@pytest.mark.parametrize("package", ["scheduler", "detectors", "delivery"])
def test_each_package_is_typed(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    assert (ROOT / package / "__init__.py").is_file()
