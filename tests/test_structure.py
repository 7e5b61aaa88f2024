"""The package's shape: what an encoding can do is asked of the encoding, the encoding
package's base module is a leaf, and every script beside the package imports."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from musicgen import config
from musicgen.encoding import REGISTRY, check_config, encoding_class, get_encoding

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "musicgen"
SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "checkpoints").glob("*.py")])


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in the module at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_the_encoding_setting_choices_are_the_registry():
    assert tuple(REGISTRY) == config.ENCODINGS
    assert config.EncodingConfig().name in REGISTRY
    for name, cls in REGISTRY.items():
        assert cls.name == name and encoding_class(name) is cls
    with pytest.raises(config.ConfigError, match="unknown encoding 'midi-like'"):
        encoding_class("midi-like")


def test_capabilities_are_the_encodings_own():
    """What the commands ask (parts, bars, controls) is a class attribute, the same on a
    built encoding."""
    able = {
        flag: sorted(name for name, cls in REGISTRY.items() if getattr(cls, flag))
        for flag in ("has_parts", "counts_bars", "takes_controls")
    }
    assert able == {
        "has_parts": ["steps", "tracks"],
        "counts_bars": ["remi", "steps", "tracks"],
        "takes_controls": ["remi", "steps", "tracks"],
    }
    for name, cls in REGISTRY.items():
        encoding = get_encoding(config.EncodingConfig(name=name))
        assert (encoding.has_parts, encoding.counts_bars) == (cls.has_parts, cls.counts_bars)


def test_controls_are_refused_by_an_encoding_without_them():
    check_config(config.EncodingConfig(name="remi", controls=True))
    with pytest.raises(config.ConfigError, match=r"beat-grid encoding \(remi, tracks or steps\)"):
        check_config(config.EncodingConfig(name="performance", controls=True))


def _setting_names(path: Path) -> set[tuple[int, str]]:
    """(line, value) of the setting names given to `errors.param(name, ...)`: an API
    keyword or CLI option (infill's `tracks=` / `--tracks`), not an encoding."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        (node.args[0].lineno, node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "param"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_no_module_outside_the_encodings_names_an_encoding():
    """Outside musicgen/encoding/, an encoding is asked what it can do, never compared by
    name: no string literal is an encoding's name (config.py keeps the setting's default
    and choices; a setting named in an error, `param("tracks")`, is a keyword)."""
    names = set(REGISTRY)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "encoding" or relative == Path("config.py"):
            continue
        settings = _setting_names(path)
        found += [f"{relative}:{line} {value!r}" for line, value in _string_literals(path)
                  if value in names and (line, value) not in settings]  # fmt: skip
    assert found == []


def test_the_encoding_base_module_is_a_leaf():
    """base.py imports no other module of the encoding package (the registry is the
    package's __init__)."""
    tree = ast.parse((PACKAGE / "encoding" / "base.py").read_text(encoding="utf-8"))
    imported = [
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ] + [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]  # fmt: skip
    assert [name for name in imported if name.startswith("musicgen.encoding")] == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_script_imports(script, monkeypatch):
    """Each script of benchmarks/ and checkpoints/ imports (as `python SCRIPT` would see
    its folder) without running: its work waits for `if __name__ == "__main__"`."""
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), "--no-such-option"])
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location(f"_script_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:  # the script's sibling modules (fixtures, run_all) are its folder's, not ours
        for name in set(sys.modules) - before:
            where = getattr(sys.modules[name], "__file__", None) or ""
            if name == spec.name or Path(where).parent == script.parent:
                del sys.modules[name]
    assert module.__doc__, f"{script.name} says what it is for in a docstring"
