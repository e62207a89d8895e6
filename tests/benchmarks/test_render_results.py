"""benchmarks/render_results.py: the README's rendered blocks agree with benchmarks/results, a changed results
file makes them disagree, and the renderers compute what the results hold."""

import json
import shutil

import pytest

from .bench_checks import load_benchmark

render = load_benchmark("render_results")


def test_readme_and_pages_agree_with_the_results(capsys):
    assert render.main(["--check"]) == 0, capsys.readouterr().err
    blocks = [m.group("name") for page in render.pages() for m in render.BLOCK.finditer(page.read_text())]
    assert set(render.RENDERERS) <= set(blocks)  # every renderer feeds the pages


def test_a_changed_result_makes_the_check_fail(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(render.RESULTS, results)
    zoo = json.loads((results / "zoo.json").read_text())
    m1 = next(row for row in zoo["rows"] if row["name"] == "m1")
    m1["mAP"]["mean"] += 1.0
    (results / "zoo.json").write_text(json.dumps(zoo))
    assert render.main(["--check", "--results", str(results)]) == 1
    assert "README.md" in capsys.readouterr().err
    table = render.zoo_table(results)
    assert f"| M1 (GAP + sigmoid) | **{m1['mAP']['mean']:.2f} ± {m1['mAP']['std']:.2f}** |" in table


def test_zoo_table_rows_hold_the_zoo_numbers():
    zoo = json.loads((render.RESULTS / "zoo.json").read_text())
    table = render.zoo_table(render.RESULTS).splitlines()
    assert len(table) == 2 + len(render.ZOO_README_ROWS)
    for row in zoo["rows"]:
        line = next(line for line in table if line.startswith(f"| {render.ZOO_README_ROWS[row['name']]} |"))
        cells = [cell.strip(" *") for cell in line.strip("|").split("|")]
        assert cells[1] == f"{row['mAP']['mean']:.2f} ± {row['mAP']['std']:.2f}"
        assert float(cells[2]) == pytest.approx(row["CF1"]["mean"], abs=0.005)
        assert float(cells[5]) == pytest.approx(row["train_min"], abs=0.05)


def test_unknown_block_and_smoke_results_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown rendered block 'nope'"):
        render.render_text("<!-- rendered: nope -->\nx\n<!-- /rendered -->", render.RESULTS)
    (tmp_path / "demo_runs.json").write_text(json.dumps({"runs": {"demo": {"smoke": True}}}))
    with pytest.raises(ValueError, match="--smoke run, not a measurement"):
        render.demo_summary(tmp_path)


def test_scale_gap_is_computed_from_the_unrounded_means():
    at192 = {r["name"]: r for r in json.loads((render.RESULTS / "zoo-192px" / "zoo.json").read_text())["rows"]}
    gap = at192["m2-irpe"]["mAP"]["mean"] - at192["m1"]["mAP"]["mean"]
    line = next(line for line in render.scale_table(render.RESULTS).splitlines() if line.startswith("| M2, iRPE"))
    assert line.endswith(f"| {gap:+.1f} |".replace("-", "−"))  # −1.8, not the difference of rounded figures
