"""The scripts' shared entry (mlic_hf.cli): a user's mistake is one ``error:`` line and an exit status, never a
traceback; anything else keeps its traceback."""

import pytest

from mlic_hf.cli import parse_json_object, script_entry
from mlic_hf.export import ExportMismatchError


class _OwnError(Exception):
    pass


@script_entry(_OwnError)
def _main(argv=None):
    kind = argv[0]
    if kind == "ok":
        return None
    if kind == "status":
        return 3
    raise {"value": ValueError("bad --flag\n  spanning lines"), "file": FileNotFoundError("no such file 'x.png'"),
           "own": _OwnError("the script's own"), "mismatch": ExportMismatchError("logits differ"),
           "bug": KeyError("a bug")}[kind]


@pytest.mark.parametrize("kind, status, line", [
    ("value", 2, "error: bad --flag spanning lines"),
    ("file", 2, "error: no such file 'x.png'"),
    ("own", 2, "error: the script's own"),
    ("mismatch", 1, "error: logits differ"),  # the export ran, its check failed
])
def test_user_errors_are_one_line_and_a_status(kind, status, line, capsys):
    assert _main([kind]) == status
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""


def test_statuses_and_bugs(capsys):
    assert _main(["ok"]) == 0 and _main(["status"]) == 3
    with pytest.raises(KeyError):  # not a user's mistake: the traceback stays
        _main(["bug"])
    assert capsys.readouterr().err == ""
    assert _main.__name__ == "_main"


def test_parse_json_object():
    assert parse_json_object(None, "x") == {} and parse_json_object("", "x") == {}
    assert parse_json_object('{"a": [1, 2]}', "x") == {"a": [1, 2]}
    with pytest.raises(ValueError, match=r"^--dataset_kwargs must be a JSON object, got '\[1\]'$"):
        parse_json_object("[1]", "dataset_kwargs")
    with pytest.raises(ValueError, match=r"^--x must be a JSON object, got '\{a' \(Expecting"):
        parse_json_object("{a", "x")
