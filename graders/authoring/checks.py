"""What an import refuses before writing anything, each with a sentence for the instructor.

Imported tests run in the trusted grader against proxies of the student's names
(graders.authoring.proxies). What a proxy cannot carry is refused here when it shows in
the test's code; what shows only when it runs is refused by the import's run of every
test against the solution, or shows in the self-check's report.
"""

from __future__ import annotations

import ast
import symtable

from graders.authoring.names import BUILTIN_NAMES, reads, statement_binds
from graders.authoring.plan import AuthoringError, ImportPlan, PlannedTest

NAMESPACE_CALLS = {"globals", "locals", "vars", "dir"}
CODE_CALLS = {"eval", "exec", "compile", "breakpoint", "__import__"}
IPYTHON_CALLS = {"get_ipython"}
INTROSPECTION = {
    "__code__",
    "__globals__",
    "__closure__",
    "__defaults__",
    "__kwdefaults__",
    "__dict__",
    "__wrapped__",
    "__self__",
    "f_back",
    "f_locals",
    "f_globals",
    "f_code",
    "gi_frame",
    "tb_frame",
    "_getframe",
    "getsource",
    "getsourcelines",
    "getfile",
}
FORBIDDEN_MODULES = {
    "inspect",
    "dis",
    "gc",
    "ctypes",
    "pickle",
    "dill",
    "cloudpickle",
    "subprocess",
    "shutil",
    "socket",
    "urllib",
    "requests",
}
FILE_LIBRARIES = {"torch", "np", "numpy", "pd", "pandas"}
FILE_READERS = {
    "load",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "read_csv",
    "read_json",
    "read_pickle",
    "read_parquet",
    "read_excel",
}
REASONS = {
    "namespace": "reads the namespace as a whole (globals(), locals(), vars(), dir()): in "
    "the grader it holds proxies of the student's names, not their module",
    "code": "runs code from a string (eval, exec, compile, __import__)",
    "introspection": "inspects code or frames (inspect, __code__, sys._getframe, "
    "getsource...): the student's code stays in the sandbox; test what it "
    "returns instead",
    "files": "reads files (open, torch.load, np.load, read_csv...): the grader has neither "
    "the student's files nor the notebook's folder",
    "ipython": "uses IPython itself (get_ipython): the test runs in plain Python",
}


def global_reads(tree: ast.Module, source: str) -> set[str]:
    """The names a test reads from the notebook's namespace (scoping as Python does)."""
    table = symtable.symtable(source, "<test>", "exec")
    top_bound = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    }
    found = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced() and s.get_name() not in top_bound
    }

    def walk(child: symtable.SymbolTable) -> None:
        for sym in child.get_symbols():
            if sym.is_referenced() and sym.is_global() and sym.get_name() not in top_bound:
                found.add(sym.get_name())
        for grandchild in child.get_children():
            walk(grandchild)

    for child in table.get_children():
        walk(child)
    # Otter's exception-based tests get these from the namespace by parameter name, and
    # read `env["name"]` from the namespace itself.
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test"):
            found |= {a.arg for a in stmt.args.args if a.arg != "env"}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "env"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.add(node.slice.value)
    return found - BUILTIN_NAMES - {"env"}


def forbidden(tree: ast.Module) -> list[str]:
    found: list[str] = []

    def note(reason: str) -> None:
        if reason not in found:
            found.append(reason)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in NAMESPACE_CALLS and (name in ("globals", "locals") or not node.args):
                note("namespace")
            elif name in CODE_CALLS:
                note("code")
            elif name in IPYTHON_CALLS:
                note("ipython")
            elif name == "open":
                note("files")
        elif isinstance(node, ast.Attribute):
            if node.attr in INTROSPECTION:
                note("introspection")
            elif node.attr in ("read_text", "read_bytes", "open") or (
                node.attr in FILE_READERS
                and isinstance(node.value, ast.Name)
                and node.value.id in FILE_LIBRARIES
            ):
                note("files")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            if any(m.split(".")[0] in FORBIDDEN_MODULES for m in modules):
                note("introspection")
    return [REASONS[r] for r in found]


def _scan_cells(plan: ImportPlan) -> tuple[list[set[str]], list[dict[str, set[str]]]]:
    """Per position: the names bound before it, and what each depends on of the student's."""
    bound: set[str] = set()
    deps: dict[str, set[str]] = {}
    bound_at: list[set[str]] = [set()]
    deps_at: list[dict[str, set[str]]] = [{}]
    for cell in plan.ref_cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            raise AuthoringError(
                f"{cell.label} is not valid Python: {exc.msg} (line {exc.lineno})"
            ) from exc
        for stmt in tree.body:
            names = statement_binds(stmt)
            bound |= set(names)
            imported = isinstance(stmt, ast.Import | ast.ImportFrom)
            if cell.kind == "solution" and not imported:
                for name in names:
                    deps[name] = {name}
            else:
                needed = set().union(*(deps.get(n, set()) for n in reads(stmt)))
                for name in names:
                    deps[name] = set() if imported else set(needed)
        bound_at.append(set(bound))
        deps_at.append({k: set(v) for k, v in deps.items()})
    return bound_at, deps_at


def check_test(
    test: PlannedTest, bound: set[str], deps: dict[str, set[str]], earlier_tests: set[str]
) -> tuple[list[str], tuple[str, ...]]:
    """(problems, the student's names the test needs) of one test."""
    where = f"{test.origin} ({test.name})"
    try:
        tree = ast.parse(test.source)
    except SyntaxError as exc:
        return [f"{where} is not valid Python: {exc.msg} (line {exc.lineno})"], ()
    problems = [f"{where} {reason}" for reason in forbidden(tree)]
    needed = global_reads(tree, test.source)
    for name in sorted(needed - bound):
        if name in earlier_tests:
            problems.append(
                f"{where} uses `{name}`, which only an earlier test cell defines; "
                "each imported test runs alone on the notebook's namespace: "
                "define it in a cell that is not a test"
            )
        else:
            problems.append(f"{where} uses `{name}`, which no cell before it defines")
    requires: list[str] = []
    for name in sorted(needed & bound):
        for answer in sorted(deps.get(name, set())):
            if answer not in requires:
                requires.append(answer)
    if not requires and not problems:
        problems.append(
            f"{where} does not use anything the student writes: it would give "
            "every student its points"
        )
    return problems, tuple(requires)


def check_plan(plan: ImportPlan) -> None:
    bound_at, deps_at = _scan_cells(plan)
    problems: list[str] = []
    test_bound: set[str] = set()
    for exercise in plan.exercises:
        if exercise.kind != "function":
            continue
        requires: list[str] = []
        for test in exercise.tests:
            found, needs = check_test(
                test, bound_at[test.position], deps_at[test.position], test_bound
            )
            problems += found
            requires += [n for n in needs if n not in requires]
            try:
                test_bound |= {n for s in ast.parse(test.source).body for n in statement_binds(s)}
            except SyntaxError:
                pass
        exercise.requires = tuple(requires)
    if problems:
        raise AuthoringError("the notebook cannot be imported:\n- " + "\n- ".join(problems))


def check_leaks(plan: ImportPlan, student_texts: list[str]) -> None:
    """No line of a solution or a hidden test in anything a student can read."""
    secret = {line for line in plan.secret_lines - plan.public_lines if len(line) >= 8}
    leaked = sorted({line.strip() for text in student_texts for line in text.splitlines()} & secret)
    if leaked:
        raise AuthoringError(
            "the import would show students a line of a solution or a "
            f"hidden test ({leaked[0]!r}); this is a bug of the import"
        )
