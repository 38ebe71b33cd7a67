"""Which notebook cell saved a figure or table, and which ``nml`` function computed it.

The report reads the notebook's cells (the executed notebook when there is one, else the source
notebook): the cell that saved ``name`` is the code cell whose ``save_figure`` / ``save_table``
call — or a helper around them named after the kind, like ``nml.notebook.show_figure`` — has the
string ``name`` as an argument. The function is read from that call's first argument
with :mod:`ast`: a call (``plots.id_ood_vs_gamma(results)``) names its function; a variable
(``fig``, ``t2``, ``pur[keep]``, ``x if ok else y``) is followed to its last assignment, in the same cell before the
call or in an earlier cell, and a method called on a variable (``table3.merge(...)``) to that
variable's, at most a few steps. The name is resolved through the notebook's imports
(``from nml.chapters.ch02_spectral import plots`` makes ``plots.x`` ``nml.chapters.ch02_spectral.plots.x``)
and kept only when it is an ``nml`` function; a result built by pandas from a table in memory
with no ``nml`` call behind it has none.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

SAVERS = ("save_figure", "save_table")
_KIND_WORD = {"figure": "figure", "table": "table"}
_MAX_CHASE = 4


@dataclass(frozen=True)
class Producer:
    """Where a saved result was made: the cell (index from 0 in the notebook read, its
    ``In [n]`` when executed, its id for a link) and the ``nml`` function, if found."""

    cell_index: int
    execution_count: int | None
    cell_id: str | None
    function: str | None

    def cell_label(self) -> str:
        return f"In [{self.execution_count}]" if self.execution_count is not None else f"#{self.cell_index}"


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _parse(source: str) -> ast.Module | None:
    # IPython magics and shell escapes are not Python
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _imports(trees: list[ast.Module]) -> dict[str, str]:
    names: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    return names


def _assignments(tree: ast.Module, before_line: int | None = None) -> dict[str, ast.AST]:
    """Variable -> the value last assigned to it (up to ``before_line``); tuple targets map to the whole value."""
    found: dict[str, tuple[int, ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and (before_line is None or node.lineno <= before_line):
            for target in node.targets:
                names = [target] if isinstance(target, ast.Name) else (
                    [t for t in target.elts if isinstance(t, ast.Name)] if isinstance(target, ast.Tuple) else [])
                for name in names:
                    if name.id not in found or found[name.id][0] <= node.lineno:
                        found[name.id] = (node.lineno, node.value)
    return {k: v for k, (_, v) in found.items()}


def _saver_call(tree: ast.Module, name: str, kind: str | None) -> ast.Call | None:
    """The call that saves ``name`` (a string argument): ``save_figure`` / ``save_table``, else a
    helper named after the kind (``show_figure``), else any call given the name."""
    best: tuple[int, ast.Call] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and any(
                isinstance(a, ast.Constant) and a.value == name for a in [*node.args, *(k.value for k in node.keywords)]):
            func = (_dotted(node.func) or "").split(".")[-1]
            word = _KIND_WORD.get(kind or "")
            rank = (0 if func in SAVERS and (word is None or word in func) else
                    1 if word and word in func else 2 if word is None or not any(w in func for w in _KIND_WORD.values()) else 3)
            if rank < 3 and (best is None or rank < best[0]):
                best = (rank, node)
    return best[1] if best else None


def _function(expr: ast.AST, scopes: list[dict[str, ast.AST]], imports: dict[str, str]) -> str | None:
    """The nml function behind ``expr``, chasing variables through ``scopes`` (innermost first)."""
    for _ in range(_MAX_CHASE):
        while isinstance(expr, ast.Subscript | ast.Starred | ast.IfExp):
            expr = expr.body if isinstance(expr, ast.IfExp) else expr.value
        if isinstance(expr, ast.Call):
            func = _dotted(expr.func)
            if func:
                head, _, rest = func.partition(".")
                if head in imports:
                    full = imports[head] + (f".{rest}" if rest else "")
                    return full if full.startswith("nml.") else None
                if rest:  # a method of a local variable (df.merge, t.assign): follow the variable
                    expr = ast.Name(id=head)
                    continue
            return None
        if isinstance(expr, ast.Name):
            value = next((scope[expr.id] for scope in scopes if expr.id in scope), None)
            if value is None:
                return None
            expr = value
            continue
        return None
    return None


def find_producer(cells: list[Any], name: str, kind: str | None = None) -> Producer | None:
    """The cell of ``cells`` (a notebook's ``cells``) that saved ``name`` and the nml function behind it.

    ``kind`` — ``"figure"`` or ``"table"`` — looks only at calls of that kind (``save_figure``,
    ``show_figure``; ``save_table``): a chapter may save a figure and a table under one name.
    """
    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    trees = {i: _parse(_source(c)) for i, c in code}
    imports = _imports([t for t in trees.values() if t is not None])
    for position, (i, cell) in enumerate(code):
        tree = trees[i]
        if tree is None or name not in _source(cell):
            continue
        call = _saver_call(tree, name, kind)
        if call is None:
            continue
        scopes = [_assignments(tree, call.lineno)]
        scopes += [_assignments(trees[j]) for j, _ in reversed(code[:position]) if trees[j] is not None]
        function = _function(call.args[0], scopes, imports) if call.args else None
        return Producer(i, cell.get("execution_count"), cell.get("id"), function)
    return None
