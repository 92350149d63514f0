"""The foundation-model method modules register without importing torch or their libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from apgbench.methods import available_methods, method_status

IDS = ["amg", "sam2-amg", "sam3", "cellpose-sam", "cellpose3", "cellsam"]


def test_listing_imports_no_deep_learning_library():
    code = (
        "import sys, apgbench.methods as m\n"
        "for c in m.available_methods().values(): m.method_status(c)\n"
        "heavy = {'torch', 'segment_anything', 'sam2', 'sam3', 'cellpose', 'cellSAM', 'hydra', 'huggingface_hub'}\n"
        "print(sorted(heavy & {k.split('.')[0] for k in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", IDS)
def test_status_is_a_sentence(name):
    cls = available_methods()[name]
    ok, message = method_status(cls)
    assert isinstance(ok, bool) and message
    assert cls.extra in {"sam", "sam2", "sam3", "cellpose", "cellpose3", "cellsam"}
