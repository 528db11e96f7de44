"""The typed stub nghttp2py/_nghttp2.pyi covers every public name of the extension."""
from __future__ import annotations

import ast

import nghttp2py
from conftest import ROOT
from nghttp2py import _nghttp2


def stub_names() -> dict[str, set[str]]:
    """Top-level names of the stub, and for each class the names it declares."""
    tree = ast.parse((ROOT / "nghttp2py" / "_nghttp2.pyi").read_text())
    names: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[""].add(node.name)
            names[node.name] = {
                item.name if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                else item.target.id
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.AnnAssign))}
        elif isinstance(node, ast.AnnAssign):
            names[""].add(node.target.id)
    return names


def public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def test_every_public_name_of_the_extension_is_in_the_stub():
    stub = stub_names()
    exported = set(_nghttp2.__all__)
    assert exported - stub[""] == set()
    assert public(stub[""]) - exported == set(), "the stub names what the extension lacks"
    for class_name in exported:
        cls = getattr(_nghttp2, class_name)
        if isinstance(cls, type):
            assert public(dir(cls)) - public(dir(object)) - stub[class_name] == set(), class_name


def test_the_package_exports_what_its_all_names():
    for name in nghttp2py.__all__:
        assert hasattr(nghttp2py, name), name
