#!/usr/bin/env python3
"""Rebuilds README.md below the marker from docs/readme/*.md (one section per component).

Each file's headings are demoted one level when the file starts at `# ` (code fences are left
alone). Edit the files in docs/readme, then run: python3 scripts/readme.py
"""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARKER = "<!-- sections from docs/readme -->"
ORDER = ["dispatcher", "scheduler", "api", "admin", "operations"]


def demoted(text: str) -> str:
    lines, fenced = [], False
    demote = text.startswith("# ")
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if demote and not fenced and line.startswith("#"):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines).rstrip("\n") + "\n"


readme = ROOT / "README.md"
head = readme.read_text().split(MARKER)[0]
parts = [demoted((ROOT / "docs/readme" / f"{name}.md").read_text()) for name in ORDER]
readme.write_text(head + MARKER + "\n" + "\n".join(parts))
