"""``apgbench methods show ID [--json]``: a method's description, extra, model per domain and defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.methods import available_methods, get_method

runner = CliRunner()


def test_show_json_has_the_full_defaults_and_models():
    result = runner.invoke(app, ["methods", "show", "apg", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["id"] == "apg" and info["extra"] == "musam"
    assert info["params"]["connectivity"] == 2 and info["params"]["tile_shape"] is None
    assert info["params"] == get_method("apg")().params
    assert info["param_choices"] == {"precision": ["fp32", "bf16", "fp16"]}
    assert (
        info["models"]["nuclei-histo"] == "vit_b_histopathology"
        and info["models"]["cells-fluo"] == "vit_b_lm"
    )


@pytest.mark.parametrize("method_id", sorted(available_methods()))
def test_show_every_method(method_id):
    result = runner.invoke(app, ["methods", "show", method_id])
    assert result.exit_code == 0, result.output
    assert method_id in result.output
    for key in get_method(method_id).default_params:
        assert key in result.output


def test_show_unknown_is_one_error():
    result = runner.invoke(app, ["methods", "show", "nope"])
    assert result.exit_code == 1 and "Unknown method 'nope'" in result.output


def test_show_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from apgbench.cli import app; "
        "r = CliRunner().invoke(app, ['methods', 'show', 'amg', '--json']); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
