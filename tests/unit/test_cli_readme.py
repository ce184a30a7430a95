"""The README's CLI examples, email sample and list of what the targets create stay true.

Every `exportwatch ...` line the README shows must be a command the real parser accepts (a renamed flag breaks
this test, not a newcomer's first hour); the email sample is the reviewed snapshot, whole; every virtualenv and
cache the README lists is one `make clean` removes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exportwatch_local.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
_BLOCK_RE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in _BLOCK_RE.finditer(README) if m["lang"] == lang]


def readme_commands() -> list[str]:
    commands = []
    for body in blocks("sh"):
        for line in body.splitlines():
            code = line.split(" #")[0].strip()
            if code.startswith("exportwatch "):
                commands.append(code)
    return commands


def test_the_readme_shows_every_command() -> None:
    shown = {shlex.split(c)[1] for c in readme_commands()}
    assert shown >= {"track", "start", "poll", "list", "cancel", "demo", "workspace", "backfill", "coverage"}, shown


@pytest.mark.parametrize("command", readme_commands())
def test_every_cli_example_in_the_readme_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.command in command


def test_the_email_sample_is_the_snapshot_whole() -> None:
    snapshot = (REPO_ROOT / "tests" / "snapshots" / "email" / "completed.txt").read_text(encoding="utf-8")
    samples = [b for b in blocks("text") if b.startswith("Subject: exportwatch: export ")]
    assert samples, "no email sample in the README"
    assert samples[0] == snapshot.rstrip("\n") + "\n"


def _make_variables(makefile: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)\s*:=\s*(\S+)\s*$", makefile, re.MULTILINE))


def _clean_removes() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^clean:.*?\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert recipe, "no clean target in the Makefile"
    text = recipe[1].replace("\\\n", " ")
    variables = _make_variables(makefile)
    text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), text)
    return {word.rstrip("/") for word in text.split() if not word.startswith("-") and word not in ("rm", "@rm")}


def test_make_clean_removes_every_venv_and_cache_the_readme_lists() -> None:
    section = README[README.index("**What the targets create**") :]
    section = section[: section.index("`make clean` removes all of them.")]
    listed = {name for name in re.findall(r"`([^`\s]+)`", section) if name.startswith(".") or "/" in name}
    assert listed >= {".venv", ".venv-sam", ".venv-tools", ".aws-sam", ".pytest_cache", ".mypy_cache"}, listed
    assert listed <= _clean_removes(), listed - _clean_removes()
