"""The pages a user reads (README.md, docs/*.md, demo/README.md) point at things that exist: every relative link
resolves to a file (and an ``#anchor`` to a heading of the page it names), every command that runs a project script
names a script that exists and only flags that script accepts (read from its own ``--help``), every ``make`` command
names a Makefile target, and the README links every docs page, each of which links back to it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS, REPO / "demo" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCRIPT = re.compile(r"(?:^|\s)((?:scripts|benchmarks|demo)/[\w/.-]+\.py)\b")
#: Prints each script's --help as JSON ({path: text}); one process, so the imports are paid once.
HELP_DRIVER = """
import contextlib, importlib.util, io, json, sys
texts = {}
for path in sys.argv[1:]:
    sys.path.insert(0, str(__import__("pathlib").Path(path).parent))
    spec = importlib.util.spec_from_file_location("_docs_" + path.replace("/", "_")[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main(["--help"])
    texts[path] = out.getvalue()
print(json.dumps(texts))
"""


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _headings(page: Path) -> set[str]:
    """The anchors of ``page``'s headings (code blocks left out: a ``# comment`` there is no heading)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(heading) for heading in re.findall(r"^#+ (.+)$", text, re.M)}


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """``(script, flags)`` of every project script run in ``text``: in fenced blocks (lines joined at a trailing
    backslash) and in inline code spans."""
    pieces = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        pieces += block.replace("\\\n", " ").splitlines()
    pieces += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    found = []
    for piece in pieces:
        piece = piece.split("#", 1)[0]
        match = SCRIPT.search(piece)
        before = piece[:match.start()] if match else ""
        # a command: the script first (`scripts/predict.py --checkpoint ...`) or run by python, torchrun, accelerate
        if not match or before.strip() and not re.search(r"python|torchrun|accelerate", before):
            continue
        try:
            tokens = shlex.split(piece[match.end():])
        except ValueError:  # an unbalanced quote in prose: read what is there
            tokens = piece[match.end():].split()
        flags = [token.split("=", 1)[0] for token in tokens if re.fullmatch(r"--[\w-]+(=.*)?", token)]
        found.append((match.group(1), flags))
    return found


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):  # http(s), mailto: checked by nobody offline
                continue
            path, _, anchor = target.partition("#")
            linked = page.parent / path if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _headings(linked):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_links_every_docs_page_and_each_links_back():
    linked = {target.partition("#")[0] for target in LINK.findall((REPO / "README.md").read_text())}
    assert [page.name for page in DOCS if f"docs/{page.name}" not in linked] == []
    for page in DOCS:
        title, _, back = page.read_text().splitlines()[:3]
        assert title.startswith("# ") and "](../README.md)" in back, page.name


def test_every_make_command_names_a_makefile_target():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    used = {target for page in PAGES for target in re.findall(r"(?:^|`)make ([\w-]+)", page.read_text(), re.M)}
    assert {"demo", "test", "finetune-example"} <= used and used <= targets, sorted(used - targets)


@pytest.fixture(scope="module")
def commands() -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for page in PAGES:
        for script, flags in _commands(page.read_text()):
            wanted.setdefault(script, set()).update(flags)
    return wanted


def test_the_pages_run_the_project_s_scripts(commands):
    assert {"scripts/train.py", "scripts/predict.py", "benchmarks/zoo.py"} <= set(commands)
    missing = [script for script in commands if not (REPO / script).is_file()]
    assert not missing, missing


def test_every_flag_of_every_command_is_accepted(commands):
    scripts = sorted(script for script in commands if (REPO / script).is_file() and commands[script])
    result = subprocess.run([sys.executable, "-c", HELP_DRIVER, *scripts], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    helps = json.loads(result.stdout.strip().splitlines()[-1])
    unknown = {script: sorted(flag for flag in commands[script]
                              if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[script]))
               for script in scripts}
    assert not {script: flags for script, flags in unknown.items() if flags}


def test_the_command_reader_finds_flags_in_blocks_and_spans():
    text = ("Run `python scripts/predict.py --checkpoint outputs/demo --top_k 3`, `scripts/evaluate.py --split test`"
            " (not `see scripts/x.py --y`) or\n\n```bash\n"
            "python scripts/train.py --preset demo \\\n    --output_dir x   # comment --not_a_flag\n```\n")
    assert sorted(_commands(text)) == [("scripts/evaluate.py", ["--split"]),
                                       ("scripts/predict.py", ["--checkpoint", "--top_k"]),
                                       ("scripts/train.py", ["--preset", "--output_dir"])]
