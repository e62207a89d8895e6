"""benchmarks/render_results.py: the README's rendered blocks agree with benchmarks/results, a changed results
file makes them disagree, and the renderers compute what the results hold."""

import json
import shutil
import sys

import pytest

from .bench_checks import load_benchmark

render = load_benchmark("render_results")
render_common = sys.modules["_common"]  # the benchmarks' shared module, as render_results imported it


def test_readme_and_pages_agree_with_the_results(capsys):
    assert render.main(["--check"]) == 0, capsys.readouterr().err
    blocks = [m.group("name") for page in render.pages() for m in render.BLOCK.finditer(page.read_text())]
    # every renderer feeds the pages, except those whose blocks are still to be placed (and only those)
    assert set(render.RENDERERS) - render.NOT_YET_PLACED <= set(blocks)
    assert not render.NOT_YET_PLACED & set(blocks), "a placed renderer is still listed in NOT_YET_PLACED"
    assert render.NOT_YET_PLACED <= set(render.RENDERERS)


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


# --- the renderers of the new-format results (provenance record, ``_common.compare`` results) ------------------------


def _comparison(*durations, goal=None, at_least=None, at_most=None):
    """A real ``compare`` result whose calls took ``durations`` seconds (in call order: a, b, b, a, a, b, ...)."""
    ticks = iter([t for d in durations for t in (0.0, d)])
    c = render_common.compare(lambda: None, lambda: None, repeats=len(durations) // 2, warmup=0,
                              timer=lambda: next(ticks))
    if goal is not None:
        c["goal"] = goal
        c["goal_met"] = render_common.judge_goal(c, at_least=at_least, at_most=at_most)
    return c


def _provenance(script):
    return render_common.provenance(["--repeats", "3"], f"benchmarks/{script}")


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))
    return data


def _timing_results(folder):
    """The six timing benchmarks' results files as their scripts write them (keys of a real smoke run's)."""
    settings = {"repeats": 3, "warmup": 1, "smoke": False}
    out = {}
    out["metrics.json"] = _write(folder, "metrics.json", {
        "provenance": _provenance("bench_metrics.py"), "settings": settings,
        "comparisons": {"sklearn loop (A) vs multilabel_metrics (B)": _comparison(
            0.9, 0.1, 0.11, 1.0, 0.95, 0.12, goal="A / B >= 5", at_least=5),
            "multilabel_metrics (A) vs np.argsort (B)": _comparison(
            0.1, 0.05, 0.06, 0.11, 0.1, 0.04, goal="A / B <= 2", at_most=2)}})
    out["ema.json"] = _write(folder, "ema.json", {
        "provenance": _provenance("bench_ema.py"), "settings": settings,
        "comparisons": {"EMA update, old (A) vs ModelEMA (B)": _comparison(0.3, 0.04, 0.03, 0.33, 0.31, 0.035)}})
    out["data.json"] = _write(folder, "data.json", {
        "provenance": _provenance("bench_data.py"), "settings": {**settings, "num_images": 48},
        "comparison": _comparison(2.0, 1.9, 2.2, 2.1, 1.8, 2.05, goal="ratio >= 1.0", at_least=1.0)})
    out["irpe.json"] = _write(folder, "irpe.json", {
        "provenance": _provenance("bench_irpe.py"), "settings": settings,
        "layers": {"14x14 tokens, d_model 512": _comparison(0.012, 0.01, 0.011, 0.013, 0.012, 0.0105,
                                                            goal="A / B <= 1.5", at_most=1.5)},
        "model": _comparison(0.5, 0.45, 0.47, 0.52, 0.49, 0.46)})
    out["msff.json"] = _write(folder, "msff.json", {
        "provenance": _provenance("bench_msff.py"), "settings": settings,
        "whole_model": {"training step": _comparison(0.4, 0.3, 0.31, 0.42, 0.41, 0.29),
                        "inference": _comparison(0.1, 0.09, 0.08, 0.11, 0.1, 0.085)}})
    step = _comparison(0.2, 0.19, 0.18, 0.21, 0.2, 0.185)
    out["vpt.json"] = _write(folder, "vpt.json", {
        "provenance": _provenance("bench_vpt.py"), "settings": settings, "methods": {}, "comparison": step,
        "goals": {"step_time": {"goal": "ML-VPT / VPT <= 1.15", "ratio": step["ratio"],
                                "met": render_common.judge_goal(step, at_most=1.15)},
                  "peak_memory": {"goal": "ML-VPT / full fine-tuning <= 0.6", "ratio": 0.4321, "met": "met"}}})
    return out


def _ratio(c):
    return f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f})"


def test_benchmark_table_holds_each_comparison_and_where_it_was_measured(tmp_path):
    data = _timing_results(tmp_path)
    table = render.benchmark_table(tmp_path)
    lines = table.splitlines()
    rows = [("bench_metrics.py", label, c) for label, c in data["metrics.json"]["comparisons"].items()]
    rows += [("bench_ema.py", label, c) for label, c in data["ema.json"]["comparisons"].items()]
    rows += [("bench_data.py", "plain PIL + torchvision loader (A) vs mlic_hf pipeline (B), one epoch",
              data["data.json"]["comparison"])]
    rows += [("bench_irpe.py", "iRPE q,k,v layer (A) vs plain layer (B), training step, 14x14 tokens, d_model 512",
              data["irpe.json"]["layers"]["14x14 tokens, d_model 512"]),
             ("bench_irpe.py", "M2 (A) vs M1's bare backbone (B), training step", data["irpe.json"]["model"])]
    rows += [("bench_msff.py", f"M4 (A) vs its backbone (B), {label}", c)
             for label, c in data["msff.json"]["whole_model"].items()]
    rows += [("bench_vpt.py", "ML-VPT (A) vs VPT (B), training step", data["vpt.json"]["comparison"])]
    assert len(lines) >= 2 + len(rows) and lines[2 + len(rows)] == ""
    for line, (script, label, c) in zip(lines[2:], rows):
        goal = f"{c['goal']}: {c['goal_met']}" if "goal" in c else "—"
        if script == "bench_vpt.py":
            goal = f"ML-VPT / VPT <= 1.15: {data['vpt.json']['goals']['step_time']['met']}"
        assert line == f"| `{script}` | {label} | {_ratio(c)} | {c['verdict']} | {goal} |"
    assert "ML-VPT / full fine-tuning <= 0.6, ratio 0.43: met." in table
    machine = render._machine(data["metrics.json"]["provenance"])
    assert f"Measured {', '.join(f'`{s}`' for s in render.TIMING_BENCHES.values())}: {machine}." in table


def test_onnx_table_holds_the_comparisons(tmp_path):
    rows = {"M1": {"image_size": 96, "batches": {"1": _comparison(0.004, 0.0005, 0.0006, 0.0045, 0.0041, 0.0005),
                                                 "8": _comparison(0.017, 0.003, 0.0032, 0.018, 0.017, 0.0031)}}}
    data = _write(tmp_path, "onnx.json", {"provenance": _provenance("bench_onnx.py"),
                                          "settings": {"threads": 2, "repeats": 3, "warmup": 1, "smoke": False},
                                          "rows": rows})
    table = render.onnx_table(tmp_path)
    for batch, c in rows["M1"]["batches"].items():
        a, b = c["a"], c["b"]
        verdict = render.VERDICT_NAMES["onnx"][c["verdict"]]
        assert (f"| M1 | 96 | {batch} | {1e3 * a['median']:.2f} ({1e3 * a['min']:.2f}–{1e3 * a['max']:.2f}) | "
                f"{1e3 * b['median']:.2f} ({1e3 * b['min']:.2f}–{1e3 * b['max']:.2f}) | {_ratio(c)} | {verdict} |"
                ) in table
    assert f"Measured {render._machine(data['provenance'])}; `python benchmarks/bench_onnx.py --repeats 3`" in table
    assert "3 interleaved runs after 1 warm-up, 2 threads" in table


def test_throughput_table_holds_rates_ratios_and_memory(tmp_path):
    train, infer = _comparison(2.0, 1.2, 1.1, 2.1, 1.9, 1.15), _comparison(0.5, 0.6, 0.62, 0.52, 0.51, 0.61)
    common = {"image_size": 224, "backbone": "resnet101", "parameters": 1000}
    fp32 = {**common, "peak_memory_mb": 4621.55, "activation_mb": 638.54, "train_images_per_s": 2.0,
            "infer_images_per_s": 8.0, "train": train["a"], "infer": infer["a"]}
    bf16 = {**common, "peak_memory_mb": 4463.0, "activation_mb": None, "train": train["b"], "infer": infer["b"],
            "train_images_per_s": 4 / train["b"]["median"], "infer_images_per_s": 4 / infer["b"]["median"],
            "versus_fp32": {"train": train, "infer": infer}}
    data = _write(tmp_path, "throughput.json", {
        "provenance": _provenance("bench_throughput.py"),
        "settings": {"device": "cpu", "image_size": 224, "batch_size": 4, "steps": 3, "warmup": 1, "smoke": False},
        "rows": [{"method": "mlic-two-stage-irpe", "setting": "fp32", "result": fp32},
                 {"method": "mlic-two-stage-irpe", "setting": "bf16", "result": bf16},
                 {"method": "mlic-resnet-probabilistic", "setting": "fp32+ckpt",
                  "result": {"skipped": "no Transformer layers to checkpoint"}}]})
    table = render.throughput_table(tmp_path)
    assert "| mlic-two-stage-irpe | fp32 | 2.00 | reference | 8.00 | reference | 639 | 4622 |" in table
    verdicts = render.VERDICT_NAMES["throughput"]
    assert (f"| mlic-two-stage-irpe | bf16 | {bf16['train_images_per_s']:.2f} | {_ratio(train)} "
            f"{verdicts[train['verdict']]} | {bf16['infer_images_per_s']:.2f} | {_ratio(infer)} "
            f"{verdicts[infer['verdict']]} | — | 4463 |") in table
    assert "| mlic-resnet-probabilistic | fp32+ckpt | skipped: no Transformer layers to checkpoint |" in table
    assert "cpu, batch 4, 224 px; img/s from the median of 3 steps after 1 warm-up" in table
    assert f"Measured {render._machine(data['provenance'])}; `{data['provenance']['command']}`." in table


def test_label_scale_table_holds_each_head_and_label_count(tmp_path):
    train, infer = _comparison(2.0, 1.2, 1.1, 2.1, 1.9, 1.15), _comparison(0.5, 0.6, 0.62, 0.52, 0.51, 0.61)
    data = _write(tmp_path, "label_scale.json", {
        "provenance": _provenance("bench_label_scale.py"),
        "settings": {"backbone": "resnet50", "image_size": 224, "batch": 2, "repeats": 3, "warmup": 1, "threads": 2,
                  "labels": [9605], "heads": ["ml-decoder"], "smoke": False},
        "results": {"9605": {"linear": {"head_parameters": 19_680_000, "activation_mb": 0.31},
                             "ml-decoder": {"head_parameters": 9_330_000, "activation_mb": 12.345,
                                            "training step": train, "inference": infer}}}})
    table = render.label_scale_table(tmp_path)
    verdicts = render.VERDICT_NAMES["label_scale"]
    assert (f"| 9,605 | GAP + linear | 19.68 M | 0.3 | {1e3 * train['b']['median']:.1f} | 1 | "
            f"{1e3 * infer['b']['median']:.1f} | 1 |") in table
    assert (f"| 9,605 | ML-Decoder (≤ 100 group queries) | 9.33 M | 12.3 | {1e3 * train['a']['median']:.1f} | "
            f"{_ratio(train)} {verdicts[train['verdict']]} | {1e3 * infer['a']['median']:.1f} | {_ratio(infer)} "
            f"{verdicts[infer['verdict']]} |") in table
    assert "on the last feature map of `resnet50` at 224 px, batch 2, 2 threads" in table
    assert f"Measured {render._machine(data['provenance'])}; `{data['provenance']['command']}`." in table


def test_streaming_table_holds_rates_ratios_goals_and_startup(tmp_path):
    epoch = _comparison(2.7, 2.6, 2.65, 2.75, 2.72, 2.61, goal="ratio >= 0.9", at_least=0.9)
    epoch["images_per_s"] = {"on disk": 2000 / epoch["a"]["median"], "streamed": 2000 / epoch["b"]["median"]}
    startup = _comparison(0.09, 0.14, 0.15, 0.1, 0.095, 0.145)
    data = _write(tmp_path, "streaming.json", {
        "provenance": _provenance("bench_streaming.py"),
        "settings": {"num_images": 2000, "shards": 8, "image_size": 224, "batch_size": 32, "workers": [0],
                     "repeats": 3, "warmup": 1, "smoke": False},
        "startup": startup, "throughput": {"0 workers": epoch}})
    table = render.streaming_table(tmp_path)
    rates = epoch["images_per_s"]
    verdict = {"A faster": "on disk faster", "B faster": "streamed faster", "within noise": "within noise"}
    assert (f"| 0 | {rates['on disk']:.0f} | {rates['streamed']:.0f} | {_ratio(epoch)} | "
            f"{verdict[epoch['verdict']]} | ratio >= 0.9: {epoch['goal_met']} |") in table
    a, b = startup["a"], startup["b"]
    assert (f"on disk {a['median']:.2f} ({a['min']:.2f}–{a['max']:.2f}) s, streamed {b['median']:.2f} "
            f"({b['min']:.2f}–{b['max']:.2f}) s; ratio {_ratio(startup)}: {verdict[startup['verdict']]}") in table
    assert "2,000 images at 224 px from 8 parquet shards, batches of 32" in table
    assert f"Measured {render._machine(data['provenance'])}" in table


def test_label_map_table_reads_both_formats(tmp_path):
    old = json.loads((render.RESULTS / "label_maps.json").read_text())
    rows = {"M1 (CAM)": old["rows"]["M1 (CAM)"], "tiny": {"pointing_accuracy": 0.5, "chance": 0.0712}}
    data = _write(tmp_path, "label_maps.json", {"provenance": _provenance("bench_label_maps.py"),
                                               "settings": {"num_images": 300, "smoke": False},
                                               "num_images": 300, "rows": rows})
    table = render.label_map_table(tmp_path).splitlines()
    m1 = old["rows"]["M1 (CAM)"]
    assert table[2] == (f"| {render.LABEL_MAP_ROWS['M1 (CAM)']} | {100 * m1['pointing_accuracy']:.1f}% | "
                        f"{100 * m1['chance']:.1f}% |")
    assert table[3] == "| tiny | **50.0%** | 7.1% |"
    assert table[5] == (f"Measured {render._machine(data['provenance'])}: 300 test images, "
                        "`python benchmarks/bench_label_maps.py --repeats 3`.")


def test_old_format_and_smoke_results_are_errors(tmp_path):
    _write(tmp_path, "onnx.json", {"date": "2026-11-30", "rows": {}})
    with pytest.raises(ValueError, match="old format"):
        render.onnx_table(tmp_path)
    _write(tmp_path, "streaming.json", {"provenance": _provenance("bench_streaming.py"), "settings": {"smoke": True}})
    with pytest.raises(ValueError, match="--smoke run, not a measurement"):
        render.streaming_table(tmp_path)
    with pytest.raises(ValueError, match="cannot read"):
        render.throughput_table(tmp_path)
