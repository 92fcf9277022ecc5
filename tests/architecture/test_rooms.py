"""The house's one-way arrows, checked by reading the code: the runner and the CLI use only the source's public
face, the source never reaches back into the runner, and the emulator and the source share no code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: str) -> dict[str, set[str]]:
    """file -> the absolute module names it imports (relative imports resolved against its package)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    names.add(f"{base}.{node.module}" if node.module else base)
                else:
                    names.add(str(node.module))
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_runner_imports_only_the_source_face() -> None:
    reached = {
        file: sorted(n for n in names if n.startswith("sources.") and n != "sources.bitrix24")
        for file, names in imported_modules("pipelines").items()
    }
    assert {f: n for f, n in reached.items() if n} == {}


def test_the_source_never_imports_the_runner_or_the_emulator() -> None:
    reached = {
        file: sorted(n for n in names if n.startswith(("pipelines", "bitrix24_emulator", "tests")))
        for file, names in imported_modules("sources").items()
    }
    assert {f: n for f, n in reached.items() if n} == {}


def test_the_emulator_shares_no_code_with_the_sync() -> None:
    reached = {
        file: sorted(n for n in names if n.startswith(("pipelines", "sources")))
        for file, names in imported_modules("bitrix24_emulator").items()
    }
    assert {f: n for f, n in reached.items() if n} == {}


def test_only_the_api_wing_speaks_http() -> None:
    speakers = {
        file
        for file, names in imported_modules("sources").items()
        if names & {"requests", "urllib3", "http.client", "socket"}
    }
    assert speakers and all(file.startswith("sources/bitrix24/api/") for file in speakers)


def test_module_names_are_unique() -> None:
    names = [
        p.stem for folder in ("sources", "pipelines") for p in (ROOT / folder).rglob("*.py") if p.stem != "__init__"
    ]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
