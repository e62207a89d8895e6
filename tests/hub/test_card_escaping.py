"""Model cards from hostile checkpoints: label names, dataset names, metric keys, config and run values and the
folder name are untrusted text and must not inject HTML, Markdown, table cells or YAML keys into README.md."""

import html
import json
import re
import shutil

import pytest
import yaml

import mlic_hf
from mlic_hf.hub import card, write_model_card

from .fixtures import PER_CLASS_AP, run_file

HOSTILE_LABELS = [
    "<script>alert(1)</script><!-- hidden",
    "<img src=x onerror=alert(1)>|a\nb | --- |",
    "![x](https://evil.example/x.png)[y](javascript:alert(1))`code`\n# Heading *em* _u_ www.evil.example",
]
HOSTILE_DATASET = "ds\nevil_key: injected\n<script>alert('ds')</script>![d](https://evil.example/d.png)"
HOSTILE_DATASET_ID = "evil)![p](https://evil.example/p.png"
HOSTILE_SPLIT = "test`|<img src=s>\n---"
HOSTILE_FOLDER = 'ckpt"<img src=f onerror=alert(1)>`[l](javascript:x)'
ALLOWED_LINKS = {card.PER_CLASS_AP_PLOT, card.PRECISION_RECALL_PLOT,
                 mlic_hf.ResNetProbabilisticConfig.method_info["paper_url"]}


def _split_card(text):
    """(YAML front matter, body outside fenced code blocks, fenced blocks' contents) of a card."""
    front, body = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S).groups()
    fences = re.findall(r"^(`{3,})[a-z]*\n(.*?)\n\1$", body, re.S | re.M)
    outside = re.sub(r"^(`{3,})[a-z]*\n.*?\n\1$", "", body, flags=re.S | re.M)
    return yaml.safe_load(front), outside, [content for _, content in fences]


def _tables(outside):
    """Each Markdown table of the body as its rows' cell counts (unescaped `|` separate cells)."""
    tables, current = [], []
    for line in outside.splitlines() + [""]:
        if line.startswith("|"):
            current.append(len(re.split(r"(?<!\\)\|", line.strip())) - 2)
        elif current:
            tables.append(current)
            current = []
    return tables


def _headings(outside):
    return [line for line in outside.splitlines() if line.startswith("#")][1:]  # without the title


def _make_hostile(checkpoint):
    """Tampers the checkpoint's config.json and mlic_run.json with hostile text."""
    config = json.loads((checkpoint / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(HOSTILE_LABELS)}
    config["label2id"] = {name: i for i, name in enumerate(HOSTILE_LABELS)}
    config["backbone"] = "resnet18`<script>alert('bb')</script>"
    config["method_info"] = {"summary": "<script>alert('method')</script>", "name": "<img src=m>"}
    (checkpoint / "config.json").write_text(json.dumps(config))
    run = run_file()
    run["dataset"] = HOSTILE_DATASET
    run["dataset_id"] = HOSTILE_DATASET_ID
    run["splits"]["test"] = HOSTILE_SPLIT
    run["data_args"].update(dataset=HOSTILE_DATASET, threshold="<script>alert('t')</script>")
    run["training_args"]["<img src=k>|key"] = "javascript:alert(2)\n```\n<script>x</script>"
    run["test_metrics"]["`weird|metric`<img src=w>\n| x |"] = 0.5
    run["test_metrics"]["CP_top3<script>"] = 0.5
    run["per_class_AP"] = {name: ap for name, ap in zip(HOSTILE_LABELS, PER_CLASS_AP.values())}
    run["per_class_AP"]["<img src=unknown>|[u](http://evil.example)"] = 0.5
    (checkpoint / "mlic_run.json").write_text(json.dumps(run))


def test_hostile_checkpoint_text_is_escaped_in_the_card(checkpoint):
    _, normal_outside, _ = _split_card(write_model_card(checkpoint).read_text())
    hostile = checkpoint.parent / HOSTILE_FOLDER
    shutil.move(checkpoint, hostile)
    _make_hostile(hostile)
    text = write_model_card(hostile).read_text()
    front, outside, fences = _split_card(text)

    body = text.split("\n---\n", 1)[1].lower()  # the YAML values are data (checked below), not Markdown
    for raw in ("<script", "<img", "<!--"):
        assert raw not in body  # not even in code blocks
    for raw in ("javascript:", "https://evil", "http://evil", "www.evil", "evil_key:"):
        assert raw not in outside.lower()
    assert set(re.findall(r"\]\(([^)]*)\)", outside)) <= ALLOWED_LINKS  # no link or image from user text
    # the structure is the normal card's: same headings, same tables with the same number of columns in each row
    assert _headings(outside) == _headings(normal_outside)
    tables = _tables(outside)
    assert len(tables) == len(_tables(normal_outside)) + 1  # + the "Other" metrics table (the odd metric keys)
    for rows in tables:
        assert len(set(rows)) == 1, rows
    assert "`<code>" not in outside and "``" not in outside  # code is never nested in a code span
    assert "- **mlic_hf model type:** `mlic-resnet-probabilistic`" in normal_outside
    # the text is still there, escaped (renderers decode the character references)
    for index, name in enumerate(HOSTILE_LABELS):
        assert card.escape_markdown(name) in outside
        assert f"| {index} | {card.escape_markdown(name)} | " in outside
    assert html.unescape(card.escape_markdown(HOSTILE_LABELS[0])) == HOSTILE_LABELS[0]
    # fenced blocks cannot be closed early: the run arguments' block is the whole, valid JSON
    (arguments,) = [json.loads(block) for block in fences if block.startswith("{")]
    assert arguments["training_args"]["<img src=k>|key"].startswith("javascript:alert(2)\n```")
    assert arguments["data_args"]["dataset"] == HOSTILE_DATASET
    # the method's description comes from the config class, not from config.json
    assert mlic_hf.ResNetProbabilisticConfig.method_info["summary"] in outside
    # the YAML metadata: the hostile strings are plain values, no key was added
    assert set(front) == {"library_name", "pipeline_tag", "tags", "datasets", "metrics", "model-index"}
    assert front["datasets"] == [HOSTILE_DATASET_ID]
    (entry,) = front["model-index"]
    assert entry["name"] == HOSTILE_FOLDER
    (result,) = entry["results"]
    assert result["dataset"] == {"name": HOSTILE_DATASET_ID, "type": HOSTILE_DATASET_ID, "split": HOSTILE_SPLIT}
    # the usage snippet's placeholder repo id is a valid Hub id
    assert re.search(r'^repo_id = "your-username/[A-Za-z0-9_.-]+"$', text, re.M)


@pytest.mark.parametrize("text", [*HOSTILE_LABELS, HOSTILE_DATASET, "a\u202eb\u200bc\x00", "é 東京 ٣ café", ""])
def test_escape_markdown_guarantees(text):
    escaped = card.escape_markdown(text)
    assert "\n" not in escaped and "\r" not in escaped
    # outside character references, the only ASCII characters are letters, digits, spaces, "," and "-"
    assert re.fullmatch(r"(?:[A-Za-z0-9 ,\-/]|&#[0-9]+;|[^\x00-\x7f])*", escaped)
    assert all(ch.isalnum() for ch in re.sub(r"&#[0-9]+;", "", escaped) if not ch.isascii())
    expected = re.sub(r"[\u202e\u200b\x00]", "\ufffd", " ".join(text.split()))
    assert html.unescape(escaped) == expected  # renders as the original text


def test_dataset_link_only_for_hub_ids():
    assert card._dataset_display("user/data.set", None) == (
        "[user/data&#46;set](https://huggingface.co/datasets/user/data.set)")
    assert "](" not in card._dataset_display(HOSTILE_DATASET_ID, None)
    assert card._dataset_display(None, "fashion_mosaic") == "`fashion_mosaic`"
    assert card._dataset_display(None, "a`b") == "<code>a&#96;b</code>"


def test_extra_sections_get_escaped_label_names():
    class Config:  # a method config whose card section quotes label names and another config string
        id2label = {0: "<img src=x>", 1: "![i](https://evil.example/i.png)"}
        source = "<script>s</script> https://evil.example/x www.evil.example me@evil.example"

        def model_card_sections(self):
            names = ", ".join(self.id2label.values())
            return [("Groups <b>", f"Labels: {names} ({self.source}) [l](javascript:x)")]

    ((title, body),) = card._extra_sections(Config())
    assert title == card.escape_markdown("Groups <b>")
    assert "<" not in body and "](" not in body and "![" not in body
    # no bare autolink either (GitHub-flavoured Markdown links these)
    assert "://" not in body and "www." not in body and "@" not in body
    assert Config.id2label[0] == "<img src=x>"  # the config itself is left alone
