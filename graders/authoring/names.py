"""Which names a piece of notebook code binds and reads (static, from its syntax tree)."""

from __future__ import annotations

import ast
import builtins

BUILTIN_NAMES = frozenset(dir(builtins)) | {"display", "__builtins__", "__name__"}


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []  # attribute or subscript targets bind no name


def _import_names(stmt: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in stmt.names:
        if alias.name == "*":
            continue
        names.append(alias.asname or alias.name.split(".")[0])
    return names


def statement_binds(stmt: ast.stmt) -> list[str]:
    """Names one top-level statement binds in the module (not inside functions)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return _import_names(stmt)
    if isinstance(stmt, ast.Assign):
        return [n for t in stmt.targets for n in _target_names(t)]
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        return _target_names(stmt.target)
    found: list[str] = []
    if isinstance(stmt, ast.For | ast.AsyncFor):
        found += _target_names(stmt.target)
    if isinstance(stmt, ast.With | ast.AsyncWith):
        found += [
            n
            for item in stmt.items
            if item.optional_vars is not None
            for n in _target_names(item.optional_vars)
        ]
    if isinstance(stmt, ast.Try):
        found += [h.name for h in stmt.handlers if h.name]
    for node in ast.walk(stmt):
        if isinstance(node, ast.NamedExpr):
            found += _target_names(node.target)
    for field in ("body", "orelse", "finalbody", "handlers"):
        for child in getattr(stmt, field, []) or []:
            if isinstance(child, ast.ExceptHandler):
                for inner in child.body:
                    found += statement_binds(inner)
            elif isinstance(child, ast.stmt):
                found += statement_binds(child)
    return found


def is_import(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Import | ast.ImportFrom)


def reads(node: ast.AST) -> set[str]:
    """Every name read anywhere inside `node` (function bodies included)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def answer_names(tree: ast.Module) -> tuple[str, ...]:
    """The names a solution cell defines for the student to write (imports excluded)."""
    names: list[str] = []
    for stmt in tree.body:
        if is_import(stmt):
            continue
        for name in statement_binds(stmt):
            if name not in names:
                names.append(name)
    return tuple(names)


def parse(source: str, where: str) -> ast.Module:
    """The syntax tree of `source`; SyntaxError names `where`."""
    try:
        return ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise SyntaxError(f"{where} is not valid Python: {exc.msg} (line {exc.lineno})") from exc
