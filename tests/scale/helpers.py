"""Test-only methods shared by the scale tests (tests/scale/conftest.py registers them for each test)."""

from __future__ import annotations

from typing import Any, ClassVar

from apgbench.methods.classic import ClassicWatershed


class FailsOnBright(ClassicWatershed):
    """``classic`` that fails on images brighter than ``limit`` on average."""

    name = "test-fails-on-bright"
    default_params: ClassVar[dict[str, Any]] = {**ClassicWatershed.default_params, "limit": 0.0}

    def _segment(self, image):
        if self.params["limit"] and image.mean() > self.params["limit"]:
            raise RuntimeError("too bright")
        return super()._segment(image)


class BrokenMethod(ClassicWatershed):
    """A method whose weights are missing: every run of it fails at prepare."""

    name = "test-broken"

    def _prepare(self, device, domain):
        raise RuntimeError("weights file /nowhere/model.pt not found")


class SleepsOnFirst(ClassicWatershed):
    """``classic`` that spends ``seconds`` in Python on the image ``sleep_on`` (test only)."""

    name = "test-sleeps"
    default_params: ClassVar[dict[str, Any]] = {
        **ClassicWatershed.default_params,
        "seconds": 0.0,
        "sleep_on": "",
    }

    def _segment(self, image):
        import time

        if self.params["seconds"] and self.params["sleep_on"] == f"{image.mean():.6f}":
            end = time.monotonic() + self.params["seconds"]
            while time.monotonic() < end:
                time.sleep(0.01)
        return super()._segment(image)


TEST_METHODS = (FailsOnBright, BrokenMethod, SleepsOnFirst)
