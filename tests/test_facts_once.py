"""Each fact defined once (issue 13, item 4): domains, score columns, the valid-row rule, file helpers."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest

from apgbench import config, metrics
from apgbench.results import SCORE_COLUMNS, THRESHOLD_COLUMNS, dataset_mean, valid_scores


def test_domains_are_listed_once():
    from apgbench.datasets.schema import Domain
    from apgbench.report.tables import DOMAIN_ORDER

    assert typing.get_args(Domain) == config.DOMAINS and DOMAIN_ORDER is config.DOMAINS


def test_score_columns_come_from_the_metric():
    scores = metrics.score_image(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 0]]))
    assert [c for c in SCORE_COLUMNS if c in scores] == list(scores)  # every value the metric returns is kept
    assert THRESHOLD_COLUMNS == [metrics.threshold_key(t) for t in metrics.DEFAULT_THRESHOLDS]


def test_one_rule_for_the_rows_that_were_scored():
    from apgbench.report.tables import scorable

    frame = pd.DataFrame(
        {
            "msa": [0.5, 0.7, np.nan, 0.0],
            "n_true": [3, 2, 4, 0],
            "error": [None, None, "RuntimeError: boom", None],
        }
    )
    assert list(valid_scores(frame).index) == [0, 1]
    with pytest.warns(UserWarning, match="empty ground truth"):
        pd.testing.assert_frame_equal(scorable(frame), valid_scores(frame))
    assert dataset_mean(frame) == pytest.approx((0.5 + 0.7) / 3)  # the failed image counts 0


def test_file_helpers(tmp_path):
    import hashlib

    from apgbench.files import atomic_write, sha256_file
    from apgbench.results import file_digest

    path = tmp_path / "a.bin"
    atomic_write(path, b"x" * 3_000_000)
    assert sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest() == file_digest(path)["sha256"]
    assert not list(tmp_path.glob(".*.tmp"))
