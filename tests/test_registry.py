import sys

import pytest
import torch

from methods import Method, create_method, list_methods, register_method
from methods.base import check_map_shape
from methods.registry import UnknownNameError, _METHODS, load_plugin


def test_list_methods_fnmatch():
    assert "baseline" in list_methods()
    assert list_methods("base*") == ["baseline", "baseline-long"]
    assert list_methods("nothing*") == []


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_method("baseline")(type("Again", (Method,), {}))


def test_unknown_method_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="baseline"):
        create_method("baselin", "tiny", 10)


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="unknown options"):
        create_method("baseline", "tiny", 10, nonsense=1)


def test_plugin_registers_an_outside_method(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_method.py").write_text(
        "from methods import register_method\n"
        "from methods.baseline import Baseline\n"
        "@register_method('my-plugin-method')\n"
        "class Mine(Baseline):\n"
        "    '''An outside method.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_plugin("my_plugin_method")
        assert "my-plugin-method" in list_methods("my-*")
    finally:
        _METHODS.pop("my-plugin-method", None)
        sys.modules.pop("my_plugin_method", None)


def test_bad_plugin_is_a_clear_import_error():
    with pytest.raises(ImportError, match="PYTHONPATH"):
        load_plugin("no_such_module_anywhere")


@pytest.mark.parametrize("name", list_methods())
def test_method_contract(name, tiny_ctx):
    """Every registered method: trains on a tiny backbone, predicts [B, K], explains [B, 1|C, H, W]."""
    data = tiny_ctx.data
    method = create_method(name, "tiny", data.num_classes).to(data.device)
    facts = method.fit(tiny_ctx)
    assert isinstance(facts, dict)
    x = data.normalize(data.test.images[:5])
    target = data.test.labels[:5]
    logits = method.predict(x)
    assert logits.shape == (5, data.num_classes) and torch.isfinite(logits).all()
    maps = method.explain(x, target)
    check_map_shape(maps, x)
    assert torch.isfinite(maps).all()


def test_check_map_shape_rejects_wrong_resolution():
    with pytest.raises(ValueError, match="explain"):
        check_map_shape(torch.zeros(2, 1, 16, 16), torch.zeros(2, 3, 32, 32))
