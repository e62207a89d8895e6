"""benchmarks/_common.py: the one timing method (interleaved rounds, ratios and verdicts from the spread, on a
scripted clock), the git record (commit, dirty files) and repo-relative paths."""

import subprocess

import pytest

from .bench_checks import load_benchmark

common = load_benchmark("_common")


class ScriptedClock:
    """A clock whose every call to a timed function advances by the next scripted duration of that function."""

    def __init__(self, durations: dict[str, list[float]]):
        self.durations, self.now, self.order = durations, 0.0, []

    def __call__(self) -> float:
        return self.now

    def run(self, name: str):
        def function():
            self.order.append(name)
            self.now += self.durations[name].pop(0)
        return function


def test_compare_interleaves_and_calls_a_win_only_outside_the_spread():
    clock = ScriptedClock({"a": [9, 9, 2.0, 2.2, 2.1], "b": [9, 9, 1.0, 1.1, 1.05]})
    result = common.compare(clock.run("a"), clock.run("b"), repeats=3, warmup=2, timer=clock)
    assert clock.order == ["a", "b", "a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A/B, B/A, A/B
    assert result["a"]["median"] == pytest.approx(2.1) and result["b"]["median"] == pytest.approx(1.05)
    assert result["ratio"] == pytest.approx(2.0)
    assert result["ratio_low"] == pytest.approx(2.0 / 1.1) and result["ratio_high"] == pytest.approx(2.2 / 1.0)
    assert result["verdict"] == "B faster"
    close = ScriptedClock({"a": [1.0, 1.04, 0.98], "b": [1.0, 0.97, 1.03]})
    assert common.compare(close.run("a"), close.run("b"), repeats=3, warmup=0, timer=close)["verdict"] == \
        "within noise"
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        common.compare(lambda: None, lambda: None, repeats=0)


def test_git_record_names_the_dirty_files(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = common.git_commit(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["dirty_files"] == []
    (tmp_path / "a.py").write_text("x = 2\n")
    (tmp_path / "untracked.txt").write_text("not part of the record\n")
    assert common.git_commit(tmp_path) == {"commit": clean["commit"], "dirty": True, "dirty_files": ["a.py"]}
    git("checkout", "-q", "--", "a.py")
    # a results file rewritten by an earlier benchmark is listed, but the code is still the commit's
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "x.json").write_text("{}\n")
    git("add", "benchmarks/results/x.json")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two")
    (results / "x.json").write_text('{"rerun": true}\n')
    again = common.git_commit(tmp_path)
    assert again["dirty"] is False and again["dirty_files"] == ["benchmarks/results/x.json"]
    (tmp_path / "a.py").write_text("x = 3\n")
    assert common.git_commit(tmp_path)["dirty"] is True
    assert common.git_commit(tmp_path / "nowhere")["commit"] is None


def test_repo_relative_keeps_no_machine_path():
    inside = str(common.REPO / "outputs" / "zoo" / "m1")
    value = {"run": inside, "list": [inside, "/elsewhere/deep/file.json"], "n": 3, "text": "plain"}
    assert common.repo_relative(value) == {"run": "outputs/zoo/m1", "list": ["outputs/zoo/m1", "file.json"],
                                           "n": 3, "text": "plain"}
