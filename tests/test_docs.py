"""Docs that can't drift: README.md is a short landing page and docs/ is the user guide. Every
command and option of the CLI is in docs/reference.md under its command's heading; every link
and #anchor resolves; every `imgcap COMMAND` named exists; every IMGCAP_* variable named is a
setting and every setting's variable is documented; the README's test command is .ci/run's.

A new guide page needs a line in docs/README.md; a new option needs a line in its command's table
in docs/reference.md; a new setting read from the environment needs a row in its table."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REFERENCE = DOCS / "reference.md"
README_MAX_LINES = 150  # a landing page: what it is, install, three commands, links


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _commands(cmd, prefix: str = "imgcap"):
    yield prefix, cmd
    if hasattr(cmd, "commands"):  # a group (typer may not subclass click.Group)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{prefix} {name}")


def _cli() -> dict:
    """Every command by its full name ("imgcap roots move"), the top level included."""
    return dict(_commands(typer.main.get_command(app)))


def _without_code(text: str) -> str:
    """Markdown with fenced and indented code blocks and inline code removed (links there are
    examples, not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _code(text: str) -> list[str]:
    """The code in Markdown: inline code spans and the lines of indented or fenced blocks."""
    blocks = re.findall(r"^```.*?\n(.*?)^```", text, flags=re.S | re.M)
    indented = re.findall(r"^(?: {4}|\t)(.*)$", text, flags=re.M)
    inline = re.findall(r"`([^`\n]+)`", text)
    return [line for block in blocks for line in block.splitlines()] + indented + inline


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*?|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _sections(path: Path) -> dict[str, str]:
    """reference.md's text under each heading that names a command ("### `imgcap index`")."""
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^#{1,6} +`(imgcap[^`]*)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _mentions(option: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", text) is not None


def test_every_command_and_option_is_in_the_reference():
    sections = _sections(REFERENCE)
    missing = []
    for name, cmd in _cli().items():
        if name == "imgcap":
            text = REFERENCE.read_text(encoding="utf-8")
        elif name not in sections:
            missing.append(f"### `{name}`")
            continue
        else:
            text = sections[name]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt not in ("--help", "-h") and not _mentions(opt, text):
                    missing.append(f"{name} {opt}")
    assert not missing, f"not in docs/reference.md (under the command's heading): {missing}"


def test_the_reference_names_no_command_or_option_that_is_gone():
    cli = _cli()
    for name, text in _sections(REFERENCE).items():
        assert name in cli, f"docs/reference.md documents `{name}`, which is no command"
        opts = {o for p in cli[name].params for o in getattr(p, "opts", [])}
        if name == "imgcap":
            continue
        for row in re.findall(r"^\| *`(-[^`]*)`", text, flags=re.M):
            first = row.split()[0]
            assert first in opts, f"docs/reference.md: `{name}` has no option {first}"


def test_every_command_has_help():
    for name, cmd in _cli().items():
        assert (cmd.help or "").strip(), f"{name} has no help text"


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in _pages():
        text = _without_code(page.read_text(encoding="utf-8"))
        targets = re.findall(r"\]\(([^)\s]+)(?: \"[^\"]*\")?\)", text)
        targets += re.findall(r"<img [^>]*src=\"([^\"]+)\"", text)
        for target in targets:
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not path.exists():
                broken.append(where)
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(where)
    assert not broken, f"links that lead nowhere: {broken}"


def test_every_imgcap_command_named_exists():
    cli = _cli()
    unknown = []
    for page in _pages():
        for code in _code(page.read_text(encoding="utf-8")):
            for first, second in re.findall(
                r"(?:^|[\s$/(])imgcap +([a-z][\w-]*)(?: +([a-z][\w-]*))?", code
            ):
                name = f"imgcap {first}"
                if name not in cli:
                    unknown.append(f"{page.relative_to(ROOT)}: {name}")
                elif second and hasattr(cli[name], "commands") and f"{name} {second}" not in cli:
                    unknown.append(f"{page.relative_to(ROOT)}: {name} {second}")
    assert not unknown, f"no such command: {unknown}"


def _settings_variables() -> set[str]:
    """The environment variables indexer/config.py reads (the one place that reads any)."""
    source = (ROOT / "indexer" / "config.py").read_text(encoding="utf-8")
    return set(re.findall(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"", source))


def test_every_imgcap_variable_is_a_setting_and_every_setting_is_documented():
    settings = _settings_variables()
    assert {"IMGCAP_DB", "IMGCAP_MODEL", "HF_ENDPOINT"} <= settings  # the pattern still reads them
    for page in _pages():
        for name in set(re.findall(r"\bIMGCAP_[A-Z0-9_]*[A-Z0-9]", page.read_text("utf-8"))):
            assert name in settings, f"{page.relative_to(ROOT)} names {name}, which is no setting"
    text = REFERENCE.read_text(encoding="utf-8")
    table = text[text.index("## Environment variables") :]
    for name in settings:
        assert f"`{name}`" in table, f"{name} is not in docs/reference.md's Environment variables"


def test_the_guide_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
    assert "](docs/README.md)" in README.read_text(encoding="utf-8")


def test_the_readme_is_a_landing_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move text to docs/"


def test_the_readme_test_command_is_what_ci_runs():
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    command = ci[-1]  # the last line runs the suite
    assert ".venv/bin/pip install -e '.[test]'" in command and command.endswith(".venv/bin/pytest")
    for page in (README, DOCS / "development.md"):
        shown = re.findall(r"^ {4}(.*\.venv/bin/pytest.*)$", page.read_text("utf-8"), flags=re.M)
        assert shown == [command], f"{page.relative_to(ROOT)}'s test command is not .ci/run's"


def test_the_readme_quick_start_puts_the_torch_choice_first():
    text = README.read_text(encoding="utf-8")
    cpu = text.index(
        "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    )
    assert cpu < text.index("pip install -e .") < text.index("imgcap index data/samples")
