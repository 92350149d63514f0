"""Test-only methods shared by the scale tests (registered on import)."""

from __future__ import annotations

from typing import Any, ClassVar

from apgbench.methods import register_method
from apgbench.methods.classic import ClassicWatershed


@register_method
class FailsOnBright(ClassicWatershed):
    """``classic`` that fails on images brighter than ``limit`` on average."""

    name = "test-fails-on-bright"
    default_params: ClassVar[dict[str, Any]] = {**ClassicWatershed.default_params, "limit": 0.0}

    def _segment(self, image):
        if self.params["limit"] and image.mean() > self.params["limit"]:
            raise RuntimeError("too bright")
        return super()._segment(image)


@register_method
class BrokenMethod(ClassicWatershed):
    """A method whose weights are missing: every run of it fails at prepare."""

    name = "test-broken"

    def _prepare(self, device, domain):
        raise RuntimeError("weights file /nowhere/model.pt not found")
