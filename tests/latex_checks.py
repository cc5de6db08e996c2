"""Compiling the .tex files the suite writes: in a minimal ``article`` that loads only the packages the file's
header comment names, with each TeX engine that is installed (CI installs them from the OS packages)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ENGINES = ("pdflatex", "xelatex", "lualatex")
INSTALL = ("apt-get install --no-install-recommends texlive-latex-base texlive-latex-recommended texlive-xetex "
           "texlive-luatex")


def need(engine: str) -> str:
    """The engine's path, or skip the test saying what to install."""
    path = shutil.which(engine)
    if path is None:
        pytest.skip(f"{engine} is not installed, so the written .tex files are not compiled here ({INSTALL})")
    return path


def header_packages(tex: str) -> list[str]:
    """Packages named by ``\\usepackage{...}`` in the file's leading comment lines."""
    header = []
    for line in tex.splitlines():
        if not line.startswith("%"):
            break
        header.append(line)
    return [p.strip() for names in re.findall(r"\\usepackage\{([^}]*)\}", "\n".join(header))
            for p in names.split(",")]


def compile_tables(engine: str, tex_files: list[Path], workdir: Path) -> tuple[int, str]:
    """Compile every file inside one minimal document; returns (exit code, log text)."""
    packages = dict.fromkeys(p for f in tex_files for p in header_packages(f.read_text()))
    workdir.mkdir(parents=True, exist_ok=True)
    body = "\n".join(rf"\input{{{f.resolve().as_posix()}}}" for f in tex_files)
    (workdir / "doc.tex").write_text("\\documentclass{article}\n"
                                     + "".join(rf"\usepackage{{{p}}}" + "\n" for p in packages)
                                     + "\\begin{document}\n" + body + "\n\\end{document}\n")
    proc = subprocess.run([need(engine), "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=workdir,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)
    log = workdir / "doc.log"
    return proc.returncode, log.read_text(errors="replace") if log.exists() else proc.stdout.decode(errors="replace")


def problems(log: str) -> list[str]:
    """What makes a compiled table unfit for a paper: errors, boxes wider than the line, glyphs a font lacks."""
    return [line for line in log.splitlines()
            if line.startswith("!") or "Overfull \\hbox" in line or "Missing character" in line]
