"""The repository explains itself: no tracked file refers to anything outside it.

A user has the repository and nothing else, so a tracked file must not point at files beside it (a sibling
folder of specifications, a machine's absolute paths, numbered sections of a document that is not shipped), a
Markdown link must not leave the repository, and a ``docs/<page>.md#<anchor>`` reference (in a docstring, the
README or the docs) must name a heading that exists, on GitHub and in the built site alike. Each checker is also
run on planted text, so these tests can fail.
"""
from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Built from pieces so that this file does not match its own patterns.
OUTSIDE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(re.escape(".." + "/shared")),  # the folder beside the repository
    re.compile(re.escape("/" + "work/")),  # absolute paths of the machine the suite was built on
    re.compile("SPEC" + r"\s*§"),  # section numbers of a specification that is not shipped
    re.compile(re.escape("SPEC" + ".md")),
    re.compile(re.escape("DESIGN" + ".md")),
    re.compile(re.escape("papers/" + "impactx-paper")),
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOC_ANCHOR = re.compile(r"docs/([\w-]+)\.md#([\w-]+)")  # docstrings, README
PAGE_ANCHOR = re.compile(r"\]\(([\w-]+\.md)?#([\w-]+)\)")  # links inside docs/*.md
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
#: link targets that commands write (not tracked, so they may not exist in a fresh clone)
GENERATED_PREFIXES = ("results/",)


def tracked_files(root: Path = ROOT) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [root / name for name in out.decode().split("\0") if name]


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary file (or one removed from the working tree)."""
    try:
        return path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def outside_references(text: str) -> list[str]:
    """Lines of ``text`` that refer to something outside the repository, as ``"line N: ..."``."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        if any(p.search(line) for p in OUTSIDE_PATTERNS):
            hits.append(f"line {number}: {line.strip()[:120]}")
    return hits


def escaping_links(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """Relative Markdown link targets of ``path`` that leave ``root`` or name a missing file."""
    bad = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        relative = target.split("#", 1)[0]
        resolved = (path.parent / relative).resolve()
        try:
            inside = resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            bad.append(f"{target} (outside the repository)")
            continue
        if not resolved.exists() and not inside.startswith(GENERATED_PREFIXES):
            bad.append(f"{target} (no such file)")
    return bad


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_slug(heading: str) -> str:
    """Python-Markdown's ``toc`` slugify (what MkDocs uses), ASCII only."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: str) -> set[str]:
    """Anchors that resolve on GitHub *and* in the MkDocs site: headings whose two slugs agree."""
    headings = [re.sub(r"`", "", h) for h in HEADING.findall(FENCE.sub("", markdown))]
    return {github_slug(h) for h in headings if github_slug(h) == markdown_slug(h)}


def broken_anchors(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """``docs/<page>.md#<anchor>`` references (and, inside docs, ``<page>.md#<anchor>`` / ``#<anchor>`` links)
    whose anchor is not a heading of that page."""
    refs = [(root / "docs" / f"{page}.md", anchor) for page, anchor in DOC_ANCHOR.findall(text)]
    if path.suffix == ".md" and path.parent.name == "docs":
        refs += [((path.parent / page) if page else path, anchor) for page, anchor in PAGE_ANCHOR.findall(text)]
    bad = []
    for page, anchor in refs:
        page_text = read_text(page)
        if page_text is None or anchor not in anchors(page_text):
            bad.append(f"{page.relative_to(root) if page.is_relative_to(root) else page}#{anchor}")
    return bad


# ------------------------------------------------------------------------------------------------ the repository
def test_no_tracked_file_refers_outside_the_repository():
    problems = {}
    for path in tracked_files():
        text = read_text(path)
        if text is not None and (hits := outside_references(text)):
            problems[path.relative_to(ROOT).as_posix()] = hits
    assert not problems, f"references to files outside the repository: {problems}"


def test_markdown_links_stay_inside_the_repository():
    problems = {}
    for path in tracked_files():
        if path.suffix == ".md" and (text := read_text(path)) is not None and (bad := escaping_links(path, text)):
            problems[path.relative_to(ROOT).as_posix()] = bad
    assert not problems, f"Markdown links that leave the repository or name no file: {problems}"


def test_doc_anchors_exist():
    problems = {}
    for path in tracked_files():
        if (text := read_text(path)) is not None and (bad := broken_anchors(path, text)):
            problems[path.relative_to(ROOT).as_posix()] = bad
    assert not problems, f"references to headings that do not exist: {problems}"


def test_docstrings_point_at_the_decisions_page():
    """The reasons behind the defaults live in docs/decisions.md, and the code says so where it decides."""
    cited = {anchor for path in tracked_files() if path.suffix == ".py" and (text := read_text(path))
             for page, anchor in DOC_ANCHOR.findall(text) if page == "decisions"}
    assert {"morf-defaults", "wae-reconstruction", "abn-attach-points", "teacher-map-scaling"} <= cited


# ------------------------------------------------------------------------------------- the checkers can fail
@pytest.mark.parametrize("planted", [
    "See `.." + "/shared/" + "SPEC" + ".md` for the full list",
    "--datasets imagefolder:.." + "/shared/data/cifar10-subset.tar.gz",
    "Defaults (" + "SPEC" + " §6, MorfConfig)",
    "describes it (" + "SPEC" + "§5)",
    "cd /" + "work/main && make",
    "the notes in " + "DESIGN" + ".md",
])
def test_outside_reference_checker_catches_planted_text(planted):
    text = f"line one\n{planted}\nline three\n"
    assert outside_references(text) == [f"line 2: {planted.strip()}"]


def test_outside_reference_checker_passes_clean_text():
    assert outside_references("See docs/decisions.md#teacher-maps and benchmarks/paper_table2.csv.\n") == []


def test_link_checker_catches_links_that_leave_the_repository(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("x")
    page = tmp_path / "docs" / "index.md"
    text = ("[ok](page.md) [site](https://example.org/a) [here](#top) [gone](missing.md) "
            "[out](../../outside.md) [made](../results/findings/)\n```\n[fenced](../../x.md)\n```\n")
    assert escaping_links(page, text, tmp_path) == ["missing.md (no such file)",
                                                    "../../outside.md (outside the repository)"]


def test_anchor_checker_catches_missing_headings(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "decisions.md").write_text("# Decisions\n\n## Teacher maps\n\n## The A / B study\n")
    source = tmp_path / "module.py"
    d = "docs" + "/"  # not spelled out: this file's own references are checked too
    text = (f'"""see {d}decisions.md#teacher-maps and {d}decisions.md#teacher-map-scaling,\n'
            f'{d}decisions.md#the-a--b-study and {d}nothing.md#x"""\n')
    assert broken_anchors(source, text, tmp_path) == [f"{d}decisions.md#teacher-map-scaling",
                                                      f"{d}decisions.md#the-a--b-study", f"{d}nothing.md#x"]
    page = docs / "index.md"
    assert broken_anchors(page, "[a](decisions.md#teacher-maps) [b](#nowhere)", tmp_path) == [f"{d}index.md#nowhere"]


def test_slugs_agree_with_github_and_mkdocs():
    assert github_slug("Stage-2 options") == markdown_slug("Stage-2 options") == "stage-2-options"
    assert github_slug("Figures 3–5: example maps") == markdown_slug("Figures 3–5: example maps")
    assert github_slug("The A / B study") != markdown_slug("The A / B study")  # such a heading is no anchor
