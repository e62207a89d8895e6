"""The pre-move public paths ``mlic_hf.peft_methods`` and ``mlic_hf.grouping`` (used by the README) still work.

The code lives in ``mlic_hf/models/multilabel_vpt/``; the old modules are aliases whose public names are the very
objects of the new modules, and importing the old ``mlic_hf.peft_methods`` alone registers the PEFT methods.
"""

import subprocess
import sys
import textwrap

import pytest

import mlic_hf.grouping
import mlic_hf.models.multilabel_vpt.grouping
import mlic_hf.models.multilabel_vpt.peft_methods
import mlic_hf.peft_methods

ALIASES = [
    (mlic_hf.peft_methods, mlic_hf.models.multilabel_vpt.peft_methods),
    (mlic_hf.grouping, mlic_hf.models.multilabel_vpt.grouping),
]


@pytest.mark.parametrize(("old", "new"), ALIASES, ids=["peft_methods", "grouping"])
def test_old_paths_give_the_same_objects(old, new):
    assert sorted(old.__all__) == sorted(new.__all__)
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name


def test_readme_imports():
    from mlic_hf.grouping import LabelGroups, compute_label_groups, groups_from_dataset
    from mlic_hf.models.multilabel_vpt import grouping, peft_methods
    from mlic_hf.peft_methods import MLVPTConfig, VPTConfig, last_ml_vpt_outputs

    assert (MLVPTConfig, VPTConfig, last_ml_vpt_outputs) == (
        peft_methods.MLVPTConfig, peft_methods.VPTConfig, peft_methods.last_ml_vpt_outputs)
    assert (LabelGroups, compute_label_groups, groups_from_dataset) == (
        grouping.LabelGroups, grouping.compute_label_groups, grouping.groups_from_dataset)


def test_old_peft_methods_import_registers_the_methods_without_warnings():
    # A fresh interpreter: only the old path is imported, so registration cannot come from another test's import.
    code = textwrap.dedent("""
        import warnings

        import mlic_hf, peft, peft.mapping
        from peft.utils.peft_types import PeftType

        assert "ML_VPT" not in PeftType.__members__ and "VPT" not in PeftType.__members__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import mlic_hf.grouping
            import mlic_hf.peft_methods
        ours = [str(w.message) for w in caught if "mlic_hf" in w.filename or "mlic_hf" in str(w.message)]
        assert not ours, ours

        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
        from mlic_hf.models.multilabel_vpt import peft_methods
        assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.ML_VPT] is peft_methods.MLVPTConfig
        assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.VPT] is peft_methods.VPTConfig
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
