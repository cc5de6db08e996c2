"""The documentation cannot drift from the code: the methods page is what the generator makes of the registry, every
method option and every metric is documented, and the packaging files agree with each other."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from benchmarks import docs
import benchmarks.scores  # noqa: F401  (declares every score)
from core.scores import SCORES
from methods.base import Method
from methods.map_fidelity import FIDELITY_METRICS
from methods.registry import get_method_class

ROOT = Path(__file__).resolve().parent.parent


def test_methods_page_is_what_the_generator_makes():
    committed = (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    assert committed == docs.render_methods_page(), "docs/methods.md is stale: run python -m benchmarks.docs"


def test_check_mode_fails_on_a_stale_page(tmp_path, capsys):
    page = tmp_path / "methods.md"
    assert docs.main(["--check", "--out", str(page)]) == 1  # missing
    page.write_text(docs.render_methods_page().replace("| `lam` | `1.0` |", "| `lam` | `0.5` |"))
    assert docs.main(["--check", "--out", str(page)]) == 1  # a default edited by hand
    assert docs.main(["--out", str(page)]) == 0
    assert docs.main(["--check", "--out", str(page)]) == 0
    assert "out of date" in capsys.readouterr().err


def test_every_builtin_method_is_on_the_page_with_its_options():
    page = docs.render_methods_page()
    for name in docs.builtin_methods():
        assert f"\n## {name}\n" in page
        cls = get_method_class(name)
        documented = {o["name"] for o in docs.method_options(cls)}
        assert documented == cls.option_names(), name
        for option in documented:
            assert f"| `{option}` |" in page


def test_options_take_the_most_derived_default_and_respect_option_names():
    single = {o["name"]: o for o in docs.method_options(get_method_class("impactx-single"))}
    assert single["lep_init"]["default"] == "pretrained"  # overrides IMPACTX's "stage1"
    assert single["refresh_every"]["declared_in"] == "IMPACTXSingle"
    assert "lam" not in {o["name"] for o in docs.method_options(get_method_class("impactx-nolambda"))}


def test_profiles_show_what_they_set():
    assert docs.profile_settings("impactx")["lam"] == ["paper: grid `[0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4]`"]
    assert docs.profile_settings("impactx-single")["refresh_every"] == ["smoke: `4`"]


def test_an_undocumented_option_or_method_is_an_error(monkeypatch):
    class Undocumented(Method):
        """A method nobody wrote notes for."""

        def __init__(self, backbone: str, num_classes: int, *, brand_new: int = 3, **cfg) -> None:
            super().__init__(backbone, num_classes, **cfg)

    assert [o["name"] for o in docs.method_options(Undocumented)] == ["brand_new"]
    with pytest.raises(KeyError, match="brand_new"):
        docs.option_help("undocumented", "brand_new")
    monkeypatch.setitem(docs.METHOD_NOTES, "no-such-method", dict.fromkeys(docs.NOTE_FIELDS, "x"))
    with pytest.raises(KeyError, match="no-such-method"):
        docs.render_methods_page()
    monkeypatch.delitem(docs.METHOD_NOTES, "no-such-method")
    monkeypatch.delitem(docs.METHOD_NOTES, "abn")
    with pytest.raises(KeyError, match="abn"):
        docs.render_methods_page()


def test_docstring_roles_become_code_spans():
    assert docs.clean_docstring("Uses :class:`methods.context.FitContext` and ``x``.") == \
        "Uses `methods.context.FitContext` and `x`."


def test_metrics_page_defines_every_metric():
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name in [*SCORES.names(), *FIDELITY_METRICS, "budget/epochs", "budget/images"]:
        assert f"`{name}`" in page or f"`{name}/" in page, f"docs/metrics.md does not define {name}"


def test_docs_extra_matches_the_tox_docs_environment():
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    deps = [d.strip() for d in tox["testenv:docs"]["deps"].splitlines() if d.strip()]
    assert sorted(deps) == sorted(extra)
    assert "--strict" in tox["testenv:docs"]["commands"]


def test_every_page_is_in_the_site_navigation():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert re.search(rf":\s*{re.escape(page.name)}\s*$", config, re.M), f"{page.name} is not in mkdocs.yml nav"


def test_license_and_citation_agree_with_the_package():
    tomllib = pytest.importorskip("tomllib")
    yaml = pytest.importorskip("yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["version"] == project["version"]
    paper = cff["references"][0]
    assert paper["title"].startswith("IMPACTX") and [a["family-names"] for a in paper["authors"]] == \
        ["Apicella", "Giugliano", "Isgrò", "Pollastro", "Prevete"]
