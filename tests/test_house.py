"""The house rules of the package: every module imports on its own, and no import cycles."""

import ast
import subprocess
import sys
from pathlib import Path

from vqvae_lib.paths import repo_root

PACKAGE = repo_root() / "vqvae_lib"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if "__main__" not in p.name
)


_IMPORT_EACH_ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for m in [m for m in sys.modules if m == "vqvae_lib" or m.startswith("vqvae_lib.")]:
        del sys.modules[m]          # our package starts from nothing; torch & co. stay loaded
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\\n" + traceback.format_exc(limit=3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    """Each module is imported first, with none of the package loaded before it (third-party
    libraries stay loaded, for speed): a cycle that only works in one import order fails here."""
    assert len(MODULES) > 30
    run = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, *MODULES], capture_output=True,
                         text=True, cwd=repo_root(), timeout=300)
    assert run.returncode == 0, f"modules that fail to import alone:\n{run.stdout[-3000:]}{run.stderr[-2000:]}"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported vqvae_lib module, at top level?) for every intra-package import of a file."""
    mod = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = mod.rsplit(".", 1)[0] if path.name != "__init__.py" else mod.removesuffix(".__init__")
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("vqvae_lib"):
                target = node.module
            else:
                continue
            names = [f"{target}.{a.name}" for a in node.names]
            out += [(n if n.replace(".", "/") + ".py" in _FILES or n.replace(".", "/") in _DIRS
                     else target, id(node) in top) for n in names]
    return out


_FILES = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")}
_DIRS = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*") if p.is_dir()}


def test_no_function_local_imports_of_the_package():
    """Imports of our own modules sit at the top of each file (none hidden to dodge a cycle);
    the ``python -m`` shims (demo, predict, slices) import their CLI under ``__main__`` only."""
    shims = {"demo.py", "predict.py", "slices.py"}
    local = [f"{p.relative_to(PACKAGE)} imports {m}" for p in PACKAGE.rglob("*.py")
             if p.name not in shims or p.parent != PACKAGE for m, top in _imports(p) if not top]
    assert not local, "function-local imports:\n" + "\n".join(local)


def test_data_and_model_never_import_the_notebook_layer_or_figures():
    bad = []
    for sub in ("data", "model"):
        for p in (PACKAGE / sub).glob("*.py"):
            if p.name == "figures.py":
                continue
            for m, _ in _imports(p):
                if m.startswith(("vqvae_lib.course.session", "vqvae_lib.course.runner", "vqvae_lib.viz")) or \
                        m.endswith(".figures") or ".figures." in m:
                    bad.append(f"{sub}/{p.name} imports {m}")
    assert not bad, "\n".join(bad)


def test_design_md_draws_every_module_of_the_house():
    """docs/DESIGN.md's tree has one line per module, and names no module that is gone."""
    import re

    text = (repo_root() / "docs" / "DESIGN.md").read_text()
    tree = text.split("<!-- tree -->")[1].split("<!-- /tree -->")[0]
    listed, folder = set(), ""
    for line in tree.splitlines():
        m = re.match(r"^(\s*)([\w]+)(/|\.py)\s", line + " ")
        if not m:
            continue
        if m.group(3) == "/":
            folder = "" if m.group(2) == "vqvae_lib" else m.group(2) + "/"
        else:
            listed.add((folder if m.group(1).count(" ") > 2 else "") + m.group(2) + ".py")
    actual = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
              if p.name not in ("__init__.py", "__main__.py")}
    assert listed == actual, f"missing from DESIGN.md: {sorted(actual - listed)}; " \
                             f"listed but absent: {sorted(listed - actual)}"


# Names that every command module defines once for itself, by design: its entry point and the
# name of the manifest file its output folder carries (each module's own value).
PER_MODULE_NAMES = {"main", "MANIFEST"}


def test_one_meaning_per_name():
    """No two modules define the same public top-level function, class or constant: one name,
    one thing (a second `generate` or `validate` that does something else is refused here)."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name) and t.id.isupper()]
            for name in names:
                if not name.startswith("_") and name not in PER_MODULE_NAMES:
                    seen.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, f"names defined in several modules: {twice}"
