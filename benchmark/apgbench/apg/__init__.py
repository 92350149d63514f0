"""The paper's algorithms on decoder maps: automatic prompt generation (APG) and AIS (seeded watershed).

Pure numpy/scipy/scikit-image, independent of any network and of the rest of apgbench. A model plugs in
through two things: the three decoder maps (foreground, center distance, boundary distance) and an object
with ``predict_points(points) -> PromptMasks`` (:class:`PromptableModel`). :mod:`apgbench.apg.testing`
provides ground-truth versions of both.
"""

from .core import (
    AIS_DEFAULTS,
    APG_DEFAULTS,
    automatic_instance_segmentation,
    automatic_prompt_generation,
    prompt_masks_to_labels,
)
from .masks import PromptableModel, PromptMasks, mask_nms, paint_prompt_masks, ranking_scores
from .prompts import PROMPT_MODES, derive_prompts
from .upsample import LogitUpsampler

__all__ = [
    "AIS_DEFAULTS",
    "APG_DEFAULTS",
    "PROMPT_MODES",
    "LogitUpsampler",
    "PromptMasks",
    "PromptableModel",
    "automatic_instance_segmentation",
    "automatic_prompt_generation",
    "derive_prompts",
    "mask_nms",
    "paint_prompt_masks",
    "prompt_masks_to_labels",
    "ranking_scores",
]
