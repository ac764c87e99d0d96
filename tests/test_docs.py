"""The project's own documents: generated pages are current, and nothing points outside the tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from relaytests.management.commands import vectordoc

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".toml", ".html", ".md", ".txt", ".yml", ".yaml", ".cfg", ".css", ".js", ""}
# Documents that lived beside the repository while it was first written, and paths out of the tree
# (written [/] so that a plain grep of the tree for those paths does not find this pattern itself).
OUTSIDE = re.compile(
    r"DESIGN\.md|relay-vectors\.md|remediation\.md|style-examples\.md|\.\./shared|shared[/](?:reference|guides)"
)
# A relative link in Markdown: [text](path) where path is no URL and no anchor.
MARKDOWN_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in names.splitlines() if (ROOT / name).suffix in TEXT_SUFFIXES]


def test_the_vector_page_is_generated_from_the_catalogue(tmp_path, monkeypatch):
    call_command("vectordoc", "--check")  # the committed page is current
    stale = tmp_path / "vectors.md"
    stale.write_text(vectordoc.render_catalogue().replace("`plain`", "`plain-renamed`"))
    monkeypatch.setattr(vectordoc, "DOC_FILE", stale)
    with pytest.raises(CommandError, match="stale"):
        call_command("vectordoc", "--check")
    call_command("vectordoc")
    assert stale.read_text() == vectordoc.render_catalogue()


def test_no_file_points_to_documents_outside_the_repository():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_files()
        if path.is_file()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line) and path.name != "test_docs.py"
    ]
    assert offenders == []


def test_every_relative_markdown_link_names_a_file_in_the_tree():
    broken = [
        f"{path.relative_to(ROOT)} -> {target}"
        for path in tracked_files()
        if path.suffix == ".md"
        for target in MARKDOWN_LINK.findall(path.read_text())
        if not (path.parent / target.split("#")[0]).exists()
    ]
    assert broken == []
