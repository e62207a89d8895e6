"""The package layout the project keeps: a method lives in its own folder, shared code imports no method, and shared
layers are shared."""

import ast
from pathlib import Path

import mlic_hf
from mlic_hf.models import METHOD_PACKAGES

PACKAGE = Path(mlic_hf.__file__).parent
# kept only so that old import paths keep working; they re-export ML-VPT's modules
BACKWARD_COMPATIBLE_ALIASES = {"grouping.py", "peft_methods.py"}


def _imports(path: Path) -> set[str]:
    """Absolute dotted names of every module ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _method_of(name: str) -> str | None:
    for method in METHOD_PACKAGES:
        if name == f"mlic_hf.models.{method}" or name.startswith(f"mlic_hf.models.{method}."):
            return method
    return None


def _shared_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "models" not in p.relative_to(PACKAGE).parts[:1]
            and p.name not in BACKWARD_COMPATIBLE_ALIASES]


def test_shared_code_imports_no_method():
    offenders = {str(p.relative_to(PACKAGE)): sorted({m for m in map(_method_of, _imports(p)) if m})
                 for p in _shared_modules()}
    assert not {k: v for k, v in offenders.items() if v}


def test_a_method_imports_no_other_method():
    for method in METHOD_PACKAGES:
        for path in (PACKAGE / "models" / method).rglob("*.py"):
            others = {m for m in map(_method_of, _imports(path)) if m and m != method}
            assert not others, f"{path.relative_to(PACKAGE)} imports {others}"


def test_every_method_folder_is_complete():
    for method in METHOD_PACKAGES:
        folder = PACKAGE / "models" / method
        assert (folder / f"configuration_{method}.py").is_file() and (folder / f"modeling_{method}.py").is_file()
        assert (folder / "preset.py").is_file(), method
        tests = Path(__file__).parent / "models" / method
        assert (tests / "tiny_config.py").is_file(), f"tests/models/{method}/tiny_config.py"


def test_shared_layers_serve_two_or_more_methods():
    base_users = set(METHOD_PACKAGES)  # what the base model imports, every method uses
    base = set().union(*(_imports(PACKAGE / name) for name in ("modeling_utils.py", "configuration_utils.py")))
    for layer in (PACKAGE / "layers").glob("*.py"):
        if layer.name == "__init__.py":
            continue
        name = f"mlic_hf.layers.{layer.stem}"
        users = {m for m in METHOD_PACKAGES
                 if any(n == name or n.startswith(name + ".") for p in (PACKAGE / "models" / m).rglob("*.py")
                        for n in _imports(p))}
        if any(n == name or n.startswith(name + ".") for n in base):
            users |= base_users
        assert len(users) >= 2, f"mlic_hf/layers/{layer.name} is used by {sorted(users)} only: move it to the method"
