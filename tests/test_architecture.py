"""The import graph: no cycle between modules of clir_ot (the layers themselves are `make lint`'s contract)."""

from __future__ import annotations

import grimp
import pytest

pytestmark = pytest.mark.unit


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of ``graph`` (module → modules it imports), those of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_of_clir_ot_imports_itself_through_others() -> None:
    g = grimp.build_graph("clir_ot", exclude_type_checking_imports=True, cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert len(graph) > 60
    assert strongly_connected(graph) == []


@pytest.mark.unit
def test_every_module_is_mapped_to_its_tests_in_conftest() -> None:
    """tests/conftest.py's docstring names the test files of every module; a new module must be added there, and
    every test file it names must exist."""
    import re
    from pathlib import Path

    import conftest

    listed = dict(re.findall(r"^    ([a-z0-9_.]+)\s+(.+)$", conftest.__doc__, re.MULTILINE))
    modules = {str(p.relative_to("src/clir_ot").with_suffix("")).replace("/", ".").removesuffix(".__init__")
               for p in Path("src/clir_ot").rglob("*.py")} - {"__init__", "__main__", "cli"}
    assert sorted(modules - set(listed)) == []
    named = {name for files in listed.values() for name in re.findall(r"(test_\w+) \(", files)}
    assert named and all(Path("tests", f"{name}.py").is_file() for name in named)
