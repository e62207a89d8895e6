"""The package layout the project keeps: a method lives in its own folder, shared code imports no method, shared
layers are shared, every method's public names are exported by name (so that static tools see them), and the
``return_dict`` switch is transformers' ``@can_return_tuple``, not code of each method."""

import ast
import importlib
from pathlib import Path

import pytest
import torch
from transformers.utils import ModelOutput

import mlic_hf
import mlic_hf.models
from mlic_hf.models import METHOD_PACKAGES

from .models.tiny_configs import tiny_batch, tiny_model

PACKAGE = Path(mlic_hf.__file__).parent
# what each method package exports only for mlic_hf.models to build METHODS / METHOD_PRESETS from
PER_PACKAGE_NAMES = {"METHOD", "PRESETS"}
REGISTRY_NAMES = {"METHODS", "METHOD_PACKAGES", "METHOD_PRESETS"}


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
    return [p for p in PACKAGE.rglob("*.py") if "models" not in p.relative_to(PACKAGE).parts[:1]]


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


def _static_exports(path: Path, source: str) -> tuple[set[str], set[str], set[str]]:
    """(names ``path`` imports by name from its sibling module or sub-package ``source`` — any sub-package when
    ``source`` is ``"*"`` —, names it assigns, the names of its literal ``__all__``), read from the source as a
    type checker does."""
    imported, assigned, listed = set(), set(), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and source in ("*", node.module):
            imported.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = {getattr(t, "id", None) for t in getattr(node, "targets", [getattr(node, "target", None)])}
            assigned |= targets - {None}
            if "__all__" in targets:  # literal_eval fails on a computed __all__, which static tools cannot read
                listed = set(ast.literal_eval(node.value))
    return imported, assigned, listed


def _method_exports() -> set[str]:
    """The public names of every registered method package (``METHOD_PACKAGES``)."""
    return {name for method in METHOD_PACKAGES for name in importlib.import_module(f"mlic_hf.models.{method}").__all__
            if name not in PER_PACKAGE_NAMES}


def _export_mismatch(where: str, exported: set[str], expected: set[str]) -> str:
    return (f"{where}: import by name and list in __all__ {sorted(expected - exported)}; "
            f"remove (or register their method in METHOD_PACKAGES) {sorted(exported - expected)}")


def test_every_registered_method_is_exported_by_name():
    imported, assigned, listed = _static_exports(PACKAGE / "models" / "__init__.py", "*")
    expected = _method_exports()
    where = "mlic_hf/models/__init__.py"
    assert imported - REGISTRY_NAMES == expected, _export_mismatch(where, imported - REGISTRY_NAMES, expected)
    assert REGISTRY_NAMES <= imported | assigned, f"{where}: import {sorted(REGISTRY_NAMES - imported - assigned)}"
    assert expected | REGISTRY_NAMES <= listed, f"{where}: add to __all__ {sorted(expected | REGISTRY_NAMES - listed)}"


def test_the_package_re_exports_the_methods_in_a_form_type_checkers_follow():
    """``mlic_hf`` star-imports ``mlic_hf.models`` (whose ``__all__`` is literal) and extends its own literal
    ``__all__`` with ``models.__all__``: the method names are written once, in ``mlic_hf/models/__init__.py``."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    star = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module == "models"
            and [a.name for a in n.names] == ["*"]]
    extended = [n for n in tree.body if isinstance(n, ast.AugAssign) and getattr(n.target, "id", None) == "__all__"
                and ast.unparse(n.value) == "models.__all__"]
    assert star and extended
    assert set(mlic_hf.__all__) >= set(mlic_hf.models.__all__)


def test_exports_are_the_method_packages_objects():
    import mlic_hf.models

    for method in METHOD_PACKAGES:
        package = importlib.import_module(f"mlic_hf.models.{method}")
        for name in set(package.__all__) - PER_PACKAGE_NAMES:
            assert getattr(mlic_hf.models, name) is getattr(package, name) is getattr(mlic_hf, name), name
    assert set(mlic_hf.models.__all__) == _method_exports() | REGISTRY_NAMES
    for module in (mlic_hf, mlic_hf.models):
        assert not [name for name in module.__all__ if not hasattr(module, name)], module.__name__


def _return_dict_handling(tree: ast.Module) -> list[str]:
    """What in a modeling module's source handles ``return_dict`` itself instead of ``@can_return_tuple``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("return_dict", "use_return_dict", "to_tuple"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif not isinstance(node, ast.FunctionDef):
            continue
        elif any(a.arg == "return_dict" for a in node.args.posonlyargs + node.args.args):
            # a positional return_dict would bypass the decorator, which only reads the keyword
            found.append(f"line {node.lineno}: {node.name}() takes return_dict positionally")
        elif any(a.arg == "return_dict" for a in node.args.kwonlyargs):
            decorators = {getattr(d, "id", getattr(d, "attr", None)) for d in node.decorator_list}
            if "can_return_tuple" not in decorators:
                found.append(f"line {node.lineno}: {node.name}() takes return_dict without @can_return_tuple")
            uses = [n.lineno for b in node.body for n in ast.walk(b)
                    if isinstance(n, ast.Name) and n.id == "return_dict"]
            found.extend(f"line {line}: {node.name}() reads return_dict" for line in uses)
    return found


def test_no_method_handles_return_dict_itself():
    for method in METHOD_PACKAGES:
        path = PACKAGE / "models" / method / f"modeling_{method}.py"
        found = _return_dict_handling(ast.parse(path.read_text()))
        assert not found, f"{path.relative_to(PACKAGE.parent)}: leave return_dict to @can_return_tuple: {found}"


@pytest.mark.parametrize("model_type", sorted(mlic_hf.REGISTERED_METHODS))
def test_return_dict_false_gives_the_output_as_a_tuple(model_type):
    model = tiny_model(model_type).eval()
    pixel_values, labels = tiny_batch(2, seed=0)
    with torch.no_grad():
        output = model(pixel_values, labels=labels)
        as_tuple = model(pixel_values, labels=labels, return_dict=False)
        model.config.return_dict = False
        from_config = model(pixel_values, labels=labels)
        overridden = model(pixel_values, labels=labels, return_dict=True)
    assert isinstance(output, ModelOutput) and isinstance(overridden, ModelOutput)
    assert type(as_tuple) is tuple and type(from_config) is tuple
    torch.testing.assert_close(as_tuple, output.to_tuple())
    torch.testing.assert_close(from_config, output.to_tuple())
    torch.testing.assert_close(overridden.to_tuple(), output.to_tuple())


def _calls(path: Path, name: str) -> list[int]:
    """Line numbers where ``path`` calls the bare name ``name``."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]


def test_library_code_never_prints():
    """Library code raises and logs; only the scripts' entry (mlic_hf/cli.py) writes the one ``error:`` line."""
    printing = {str(p.relative_to(PACKAGE)): _calls(p, "print") for p in PACKAGE.rglob("*.py") if p.name != "cli.py"}
    assert not {k: v for k, v in printing.items() if v}


def test_training_modules_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "training").glob("*.py")}
    assert max(sizes.values()) <= 450, sizes


def test_evaluating_a_checkpoint_needs_no_training_code():
    """Evaluation, calibration, inference and the Hub code work on saved checkpoints: they never import the
    training package (the run imports them, not the other way round)."""
    for name in ("evaluation.py", "inference.py", "calibration.py", "pipelines.py", "explain.py", "export.py"):
        assert not {i for i in _imports(PACKAGE / name) if i.startswith("mlic_hf.training")}, name
    for path in (PACKAGE / "hub").glob("*.py"):
        assert not {i for i in _imports(path) if i.startswith("mlic_hf.training")}, path.name


def test_every_script_ends_in_the_shared_entry():
    """Each script's ``main`` is wrapped by mlic_hf.cli.script_entry: one ``error:`` format and exit status."""
    for path in sorted((PACKAGE.parent / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        decorators = [ast.unparse(d) for d in main.decorator_list]
        assert any(d.startswith("script_entry(") for d in decorators), f"{path.name}: main is not @script_entry(...)"
