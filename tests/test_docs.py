"""The pages a user reads (README.md, docs/*.md, demo/README.md) point at things that exist: every relative link
resolves to a file (and an ``#anchor`` to a heading of its page), and every command that runs a project script names
a script that exists and only flags that script accepts (read from its own ``--help``)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "demo" / "README.md"]
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
        text = page.read_text()
        headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http(s), mailto: checked by nobody offline
                continue
            path, _, anchor = target.partition("#")
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif not path and anchor not in headings:
                broken.append(f"{page.relative_to(REPO)}: #{anchor} (no such heading)")
    assert not broken, broken


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
