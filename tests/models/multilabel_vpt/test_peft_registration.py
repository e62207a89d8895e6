"""Importing ML-VPT's PEFT module alone registers VPT and ML-VPT with PEFT, without warnings."""

import subprocess
import sys
import textwrap


def test_importing_peft_methods_registers_the_methods_without_warnings():
    # A fresh interpreter: only this module is imported, so registration cannot come from another test's import.
    code = textwrap.dedent("""
        import warnings

        import peft, peft.mapping
        from peft.utils.peft_types import PeftType

        assert "ML_VPT" not in PeftType.__members__ and "VPT" not in PeftType.__members__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from mlic_hf.models.multilabel_vpt import peft_methods
        ours = [str(w.message) for w in caught if "mlic_hf" in w.filename or "mlic_hf" in str(w.message)]
        assert not ours, ours

        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
        assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.ML_VPT] is peft_methods.MLVPTConfig
        assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.VPT] is peft_methods.VPTConfig
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
