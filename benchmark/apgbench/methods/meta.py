"""What apgbench knows about a method, declared once in the method's module (like MTEB's ``ModelMeta``).

A :class:`MethodMeta` holds every fact the rest of apgbench needs about a method without running it: its id
and description, the extra that installs it, the paper's table row it is compared with, its column position in
tables and plots, the datasets whose training split it saw (the ``†`` marks), the model it loads per domain,
what it does with volumes, and how to tell whether its weights are cached. Reports, ``methods list/show`` and
the registry read these facts from here and nowhere else, so a plugin method gets a full report row from its
own module alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import DOMAINS, ID_PATTERN

#: (ok, message) of a method's weights: whether it can run here and, if not or not yet, what is missing.
WeightsStatus = Callable[[], "tuple[bool, str]"]


class MethodMeta(BaseModel):
    """The metadata of one method, validated when its module is imported.

    Examples
    --------
    >>> meta = MethodMeta(name="my-model", description="My model", models=dict.fromkeys(DOMAINS, "v1"))
    >>> meta.model_for("nuclei-histo"), meta.table_order is None
    ('v1', True)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Method id (kebab-case) used on the command line, in results and reports.")
    description: str = Field(description="One line shown by `apgbench methods list`.")
    extra: str | None = Field(
        None, description='The pip extra installing its libraries: apgbench["<extra>"].'
    )
    requires: tuple[str, ...] = Field((), description="Import names it needs (checked before loading).")
    paper_row: tuple[str, str] | None = Field(
        None, description="The paper's (method_id, setting) row its default run is compared with; None: none."
    )
    table_order: int | None = Field(
        None, description="Column position in tables and plots (the paper's order); None: after those, by id."
    )
    trained_on: frozenset[str] = Field(
        frozenset(), description="Dataset ids whose training split is in its training data (the † marks)."
    )
    models: dict[str, str] = Field(
        {}, description="The model it loads by default per domain; empty for methods without weights."
    )
    default_model: str | None = Field(None, description="The model for data without a domain.")
    supports_3d: Literal["none", "native", "stitch"] = Field(
        "none", description="Volumes: none (2D only), native (3D model) or stitch (its library's slice mode)."
    )
    weights_status: WeightsStatus | None = Field(
        None, description="Reads the weights cache (imports nothing heavy): (ready, message)."
    )

    @field_validator("name")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError(f"method id '{value}' must be kebab-case (a-z, 0-9, '-', '.')")
        return value

    @field_validator("models")
    @classmethod
    def _known_domains(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(DOMAINS))
        if unknown:
            raise ValueError(
                f"models name unknown domain(s) {', '.join(unknown)}; known: {', '.join(DOMAINS)}"
            )
        return value

    def model_for(self, domain: str | None) -> str | None:
        """The model loaded for ``domain`` by default: ``models[domain]``, else :attr:`default_model`."""
        return self.models.get(domain or "", self.default_model)

    def status(self) -> tuple[bool, str]:
        """Whether the weights are ready, from :attr:`weights_status` (``(True, "ready")`` without one)."""
        return (True, "ready") if self.weights_status is None else self.weights_status()


def one_model(model: str) -> dict[str, str]:
    """``models`` of a method that loads the same model for every domain."""
    return dict.fromkeys(DOMAINS, model)
