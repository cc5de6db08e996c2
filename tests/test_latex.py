"""Issue 16: every .tex the suite writes compiles unchanged (pdflatex, xelatex, lualatex) in a minimal document
that loads only the packages its header names, and fits the text width. Skipped, with the reason, where no TeX
engine is installed."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.results import write_rows
from benchmarks.tables import write_all_tables
from benchmarks.table_frames import to_latex
from latex_checks import ENGINES, compile_tables, header_packages, problems
from test_tables import NASTY, _directional_rows

SCORES = ("aopc", "deletion_auc", "aopc_vs_random", "deletion_auc_vs_random", "aopc_vs_constant", "mask_share",
          "pointing_game")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A worst case: the paper's four methods plus four more (one named with every LaTeX special), a dataset
    with specials, paper reference columns, every explanation score of three map sources."""
    out = tmp_path_factory.mktemp("tables")
    rows = []
    extra = ("impactx-shuffled", "impactx-single", "baseline-long", NASTY)
    for r in _directional_rows():
        for method in ({"better": "impactx", "worse": "wae", "same": "abn"}.get(r["method"], r["method"]),):
            rows.append({**r, "method": method})
            if r["method"] == "same":
                rows += [{**r, "method": m} for m in extra]
    rows += [{**r, "dataset": "my_set#1 ~50%"} for r in rows]
    for method in ("baseline", "impactx", *extra):
        for seed in range(3):
            for score in SCORES:
                for source in ("own", "partition", "random"):
                    rows.append({"method": method, "backbone": "lenet5", "dataset": "cifar10", "seed": seed,
                                 "metric": f"{score}/{source}", "value": -0.123 + 0.01 * seed,
                                 "direction": "lower" if score.startswith("deletion") else "higher", "error": ""})
    write_rows(rows, out)
    files = [p for p in write_all_tables(out) if p.suffix == ".tex"]
    assert {p.name for p in files} == {"table2.tex", "explanations.tex"}
    return files


def test_the_header_names_exactly_the_packages_the_file_needs(written):
    for path in written:
        assert header_packages(path.read_text()) == ["booktabs", "graphicx"]


@pytest.mark.parametrize("engine", ENGINES)
def test_written_tex_compiles_and_fits_the_text_width(written, engine, tmp_path):
    code, log = compile_tables(engine, written, tmp_path)
    assert code == 0 and not problems(log), "\n".join(problems(log) or log.splitlines()[-30:])


def test_the_width_check_catches_a_table_wider_than_the_line(tmp_path):
    """The check above can fail: the same kind of table without the shrink overflows and is reported."""
    frame = pd.DataFrame({f"method {i}": ["64.00 ± 2.65*†"] for i in range(12)})
    tex = to_latex(frame, "too wide", "tab:wide", text_columns=0)
    unshrunk = tex.replace(r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%", "{%")
    assert unshrunk != tex
    (tmp_path / "wide.tex").write_text(unshrunk)
    code, log = compile_tables("pdflatex", [tmp_path / "wide.tex"], tmp_path / "build")
    assert code == 0 and any("Overfull \\hbox" in line for line in problems(log))
    (tmp_path / "shrunk.tex").write_text(tex)
    code, log = compile_tables("pdflatex", [tmp_path / "shrunk.tex"], tmp_path / "build2")
    assert code == 0 and not problems(log)


def test_unescaped_unicode_would_fail_with_pdflatex(tmp_path):
    """What issue 16 found: a raw U+2212 in a caption stops pdflatex; the check reports it."""
    (tmp_path / "raw.tex").write_text("% needs \\usepackage{booktabs}\n\\begin{table}\\caption{a − b}\\end{table}\n")
    code, log = compile_tables("pdflatex", [tmp_path / "raw.tex"], tmp_path / "build")
    assert code != 0 and any("U+2212" in line for line in log.splitlines())
