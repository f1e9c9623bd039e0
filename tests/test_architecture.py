"""The package's shape, as DESIGN.md states it: layers imported only downward (no package cycles),
no test helpers in the package or the recipes, module-level imports, small modules and functions."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tempo_jax"

# Top to bottom; an import may point to its own row or a lower one. `testing` is test helpers only.
LAYERS = [
    ("cli",),
    ("train", "eval", "demo", "plan"),
    ("rl", "sampling", "rewards", "data"),
    ("models", "parallel"),
    ("errors", "storage"),
]
ROW = {pkg: i for i, row in enumerate(LAYERS) for pkg in row}

# Function-local imports allowed only where a heavy optional dependency justifies one: file -> modules.
LOCAL_IMPORT_OK = {
    "testing/torch_reference.py": ("torch", "transformers"),  # the parity reference needs the torch test extra
    # loaded only in the grading workers, so the training process stays light
    # (tests/rewards: test_calling_process_stays_light_and_workers_exit_with_it)
    "rewards/equivalence.py": ("sympy", "math_verify"),
    # the entry point: every process's __main__, imported again by the grading pool's forkserver
    # children; it imports a command's modules when the command runs (tests/test_cli.py checks it stays light)
    "cli.py": ("tempo_jax", "jax"),
    # optional extra (`tempo-jax[wandb]`): a module-level `try: import wandb` so the module loads without it
    "train/wandb_logger.py": ("wandb",),
}
# Declarative tables may run longer than MAX_FUNCTION_LINES.
LONG_TABLES = {("train/config.py", "base_config"), ("cli.py", "build_parser")}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 80


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(encoding="utf-8"))


def _package(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "tempo_jax" and len(parts) > 1 else None


def _own_package(rel: pathlib.PurePath) -> str:
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name


def test_layers_import_only_downward():
    bad = []
    for rel, tree in _modules():
        own = _own_package(rel)
        if own == "testing" or own == "__init__":
            continue
        for node, name in _imports(tree):
            target = _package(name)
            if target is None or target == own:
                continue
            if target not in ROW or ROW[target] < ROW[own]:
                bad.append(f"{rel}:{node.lineno} ({own}) imports {name}")
    assert not bad, "upward or unknown-layer imports:\n" + "\n".join(bad)


def test_no_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for rel, tree in _modules():
        own = _own_package(rel)
        for _, name in _imports(tree):
            target = _package(name)
            if target and target != own:
                edges.setdefault(own, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in edges for b in edges[a] if reaches(b, a, {b}))
    assert not cycles, "package cycles:\n" + "\n".join(cycles)


def test_no_test_helpers_in_the_package_or_recipes():
    users = [
        f"{rel}"
        for rel, tree in _modules()
        if _own_package(rel) != "testing"
        for _, name in _imports(tree)
        if name.startswith("tempo_jax.testing")
    ]
    for path in sorted((ROOT / "configs").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        users += [f"configs/{path.name}" for _, name in _imports(tree) if name.startswith("tempo_jax.testing")]
    assert not users, f"test helpers imported by: {users}"


def test_imports_are_module_level():
    local = []
    for rel, tree in _modules():
        for node, name in _imports(tree):
            allowed = LOCAL_IMPORT_OK.get(rel.as_posix(), ())
            if node.col_offset > 0 and not any(name == ok or name.startswith(ok + ".") for ok in allowed):
                local.append(f"{rel}:{node.lineno} {name}")
    assert not local, "function-local imports (hoist them, or justify in LOCAL_IMPORT_OK):\n" + "\n".join(local)


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body after its docstring: the formatter puts each parameter of a long
    signature on its own line, which is not logic."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("limit", [MAX_MODULE_LINES])
def test_modules_and_functions_stay_small(limit):
    too_long = []
    for rel, tree in _modules():
        lines = len((PACKAGE / rel).read_text(encoding="utf-8").splitlines())
        if lines > limit:
            too_long.append(f"{rel}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = _body_lines(node)
                if length > MAX_FUNCTION_LINES and (rel.as_posix(), node.name) not in LONG_TABLES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "\n".join(too_long)


def test_one_definition_per_plumbing_rule():
    """Each rule has one home; a second definition of the same name elsewhere is a copy."""
    rules = (
        "BATCH_AXES",
        "make_mesh",
        "stop_and_pad_ids",
        "positions_from_valid",
        "value_at_last_token",
        "explained_variance",
        "response_values",
        "update_spec",
        "rollout_settings",
        "run_template",
    )
    homes: dict[str, list[str]] = {}
    for rel, tree in _modules():
        for node in tree.body:
            names = (
                [node.name]
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                else [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            )
            for name in names:
                if name in rules:
                    homes.setdefault(name, []).append(str(rel))
    copies = {name: where for name, where in homes.items() if len(where) > 1}
    assert not copies, f"defined more than once: {copies}"
