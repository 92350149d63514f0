"""Run plans (issue 13, item 2): one plan per record, shared by run, submit/status and evaluate."""

from __future__ import annotations

from typing import ClassVar

import pytest
from typer.testing import CliRunner

from apgbench import methods
from apgbench.cli import app
from apgbench.distributed import plan_tasks
from apgbench.methods import MethodUnavailableError, get_method
from apgbench.methods.classic import ClassicWatershed
from apgbench.plan import expand_methods, plan_external, plan_run, plan_runs
from apgbench.results import RecordWriter
from apgbench.runner import run_benchmark, run_many

DATASET = "synthetic-nuclei"


class Unready(ClassicWatershed):
    """A method whose library is missing here."""

    name = "test-unready"
    requires: ClassVar[tuple[str, ...]] = ("apgbench_no_such_module",)
    extra = "nothing"


class Closing(ClassicWatershed):
    """``classic`` that counts how often it is built and closed, and can fail on a domain."""

    name = "test-closing"
    default_params: ClassVar[dict] = {**ClassicWatershed.default_params, "fail_domain": ""}
    built: ClassVar[list[str]] = []
    closed: ClassVar[list[str]] = []

    def __init__(self, **params):
        super().__init__(**params)
        type(self).built.append(self.params["fail_domain"])

    def _prepare(self, device, domain):
        if domain == self.params["fail_domain"]:
            raise MemoryError("model does not fit")  # a bug-like failure, not one of apgbench's errors

    def close(self):
        type(self).closed.append(self.params["fail_domain"])


@pytest.fixture
def test_methods(monkeypatch):
    """Register the test methods for one test only (the registry is global)."""
    registry = methods._REGISTRY
    for cls in (Unready, Closing):
        registry.add(cls.name, cls)
    Closing.built, Closing.closed = [], []
    yield
    for cls in (Unready, Closing):
        registry.remove(cls.name)


def test_plan_names_the_record_that_run_and_submit_use(roots):
    results, _ = roots
    plan = plan_run(DATASET, "classic", {"h": 3}, results_root=results, limit=4)
    assert plan.params["h"] == 3.0 and plan.user_params == {"h": 3.0} and plan.run_key.startswith("p-")
    assert plan.directory == results / "classic" / DATASET / plan.run_key and len(plan.image_ids) == 4
    assert plan.n_images == 6 and [p.shard for p in plan.shards(3)] == [(0, 3), (3, 4)]
    summary = run_benchmark(
        DATASET, "classic", params={"h": 3}, results_root=results, limit=4, show_progress=False
    )
    assert summary.directory == plan.directory
    tasks = plan_tasks([DATASET], ["classic"], {"h": 3}, results_root=results, limit=4, shard_size=3)
    assert {t.record for t in tasks} == {str(plan.directory.resolve())} and [t.shard for t in tasks] == [
        (0, 3),
        (3, 4),
    ]


def test_external_predictions_plan(roots, tmp_path):
    plan = plan_external(DATASET, "my-tool", tmp_path, results_root=roots[0])
    assert (
        plan.run_key == "default"
        and plan.method_cls is None
        and plan.params == {"predictions": str(tmp_path)}
    )
    with pytest.raises(ValueError, match="registered method"):
        plan_external(DATASET, "classic", tmp_path, results_root=roots[0])


def test_everything_is_checked_before_the_first_pair_runs(roots):
    results, _ = roots
    with pytest.raises(ValueError, match="finite number"):
        plan_runs([DATASET, "synthetic-cells"], ["classic"], {"h": "abc"}, results_root=results)
    with pytest.raises(KeyError, match="Did you mean"):
        list(run_many([DATASET, "synthetic-celss"], ["classic"], results_root=results, show_progress=False))
    assert not results.exists()  # nothing ran: the typo was found before the first pair


def test_all_expands_once_for_run_and_submit(roots, test_methods, monkeypatch):
    monkeypatch.setattr(
        methods, "available_methods", lambda: {"classic": ClassicWatershed, "test-unready": Unready}
    )
    ids, skipped = expand_methods(["all"])
    assert ids == ["classic"] and skipped[0][0] == "test-unready" and "apgbench[nothing]" in skipped[0][1]
    assert expand_methods(["all"], ready_only=False)[0] == ["classic", "test-unready"]
    with pytest.raises(MethodUnavailableError, match="test-unready"):
        expand_methods(["classic", "test-unready"])
    cli = CliRunner()
    run = cli.invoke(app, ["run", "-d", DATASET, "-m", "all", "--limit", "1"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "skipping test-unready" in run.output and (roots[0] / "classic" / DATASET / "default").is_dir()
    submit = cli.invoke(
        app,
        ["submit", "-d", DATASET, "-m", "all", "--limit", "1", "--executor", "debug"],
        catch_exceptions=False,
    )
    assert submit.exit_code == 0 and "skipping test-unready" in submit.output, submit.output


def test_provenance_is_checked_once_per_run(roots, monkeypatch):
    calls = []
    original = RecordWriter.check_provenance
    monkeypatch.setattr(
        RecordWriter, "check_provenance", lambda self, **kw: calls.append(kw) or original(self, **kw)
    )
    run_benchmark(DATASET, "classic", results_root=roots[0], limit=2, show_progress=False)
    assert len(calls) == 1 and {"dataset_fingerprint", "params", "method_info"} <= set(calls[0])


def test_run_many_closes_every_segmenter_it_built(roots, test_methods):
    datasets = [DATASET, "synthetic-histo"]
    list(run_many(datasets, ["test-closing"], results_root=roots[0], limit=1, show_progress=False))
    assert Closing.built == [""] and Closing.closed == [""]  # one segmenter for both datasets, closed once
    with pytest.raises(MemoryError):
        list(
            run_many(
                datasets,
                ["test-closing"],
                params={"fail_domain": "nuclei-histo"},
                results_root=roots[0],
                limit=1,
                show_progress=False,
            )
        )
    assert Closing.closed == ["", "nuclei-histo"]  # closed although the run stopped with an error
    stopped = run_many(
        datasets,
        ["test-closing", "classic"],
        params=None,
        results_root=roots[0] / "b",
        limit=1,
        show_progress=False,
    )
    next(stopped)
    stopped.close()  # the caller stops early
    assert Closing.closed == ["", "nuclei-histo", ""]
    assert get_method("test-closing") is Closing
