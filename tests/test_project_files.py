"""The project's own files: the README's two commands are the Makefile's and CI's, no shipped file points into a
developers' folder, and no committed results file or page holds a machine's absolute path."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["mlic_hf", "scripts", "benchmarks", "docs", "README.md", "pyproject.toml", "Makefile"]


def _quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one():
    assert _quick_start_commands() == ["make demo", "make test"]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci == ["make test"]
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        recipe = re.search(rf"^{target}: (.*)$", makefile, re.M)
        assert recipe and "setup" in recipe.group(1) and "data" in recipe.group(1), target


def test_make_knows_the_targets_and_skips_a_done_set_up(tmp_path):
    # `make -n` prints what would run: with the stamp newer than pyproject.toml, the set-up is skipped
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stamp = venv / ".mlic_hf-installed"
    stamp.touch()
    result = subprocess.run(["make", "-n", "test", f"VENV={venv}", f"FASHION_MNIST_DIR={tmp_path}"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pip install" not in result.stdout and "pytest -q tests --durations=15" in result.stdout
    stamp.unlink()
    fresh = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=REPO, capture_output=True, text=True)
    assert "pip install -q torch==2.14.1 torchvision==0.29.1" in fresh.stdout
    assert 'pip install -q -e ".[dev]"' in fresh.stdout


def test_no_shipped_file_points_into_a_developers_folder():
    offenders = []
    for entry in SHIPPED:
        path = REPO / entry
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and p.suffix != ".pyc"]
        for file in files:
            text = file.read_text(errors="ignore")
            if "shared/papers" in text or "../shared" in text:
                offenders.append(str(file.relative_to(REPO)))
    assert not offenders


#: Committed files that carry data or claims (results, pages, configs): paths in them must be repo-relative.
DATA_FILES = ("benchmarks/results/", "docs/", "configs/", "demo/", "README.md", "CHANGELOG.md")
#: An absolute path into a user's or a machine's folders (system paths such as /usr/share are fine).
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|root|Users|tmp|mnt|private|var/folders)/[^\s\"'`)]+"
                          r"|\b[A-Za-z]:\\\\?Users\\")


def test_no_committed_data_file_holds_an_absolute_machine_path():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    files = [name for name in listed if name.startswith(DATA_FILES) and (REPO / name).is_file()]
    assert "benchmarks/results/zoo.json" in files  # the check reads the results
    offenders = {}
    for name in files:
        found = MACHINE_PATH.findall((REPO / name).read_text(errors="ignore"))
        if found:
            offenders[name] = sorted(set(found))[:3]
    assert not offenders, offenders


def test_the_machine_path_pattern_finds_what_it_must():
    for text in ('"output_dir": "/work/main/outputs/zoo/m1/seed0"', "see /home/ann/runs/x", "C:\\Users\\ann\\x",
                 "/tmp/pytest-of-root/a"):
        assert MACHINE_PATH.search(text), text
    for text in ("/usr/share/datasets/fashion-mnist", "outputs/zoo/m1/seed0", "https://example.org/work/x",
                 "mlic_hf/models/x"):
        assert not MACHINE_PATH.search(text), text
