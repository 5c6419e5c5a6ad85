"""When validation runs and how per-loader metrics are combined: ``ValidationConfig``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from model_training_framework.config.enums import AnyCaseEnum
from model_training_framework.config.imports import import_callable
from model_training_framework.config.loading import ConfigModel
from model_training_framework.trainer.config.fields import (
    PositiveInt,
    check_aggregation_fn,
    enum_field,
)

__all__ = ["ValAggregation", "ValidationConfig", "ValidationFrequency"]


class ValidationFrequency(AnyCaseEnum):
    """When validation runs: after every ``validate_every_n_epochs`` epochs, or every N steps."""

    PER_EPOCH = "per_epoch"
    EVERY_N_STEPS = "every_n_steps"


class ValAggregation(AnyCaseEnum):
    """How per-loader validation metrics are combined into ``val/<metric>``."""

    MICRO_AVG_WEIGHTED_BY_SAMPLES = "micro_avg_weighted_by_samples"
    MACRO_AVG_EQUAL_LOADERS = "macro_avg_equal_loaders"
    PRIMARY_METRIC_PER_LOADER = "primary_metric_per_loader"
    CUSTOM = "custom"


class ValidationConfig(ConfigModel):
    """When validation runs and how the metrics of several loaders are aggregated."""

    frequency: Annotated[ValidationFrequency, enum_field(ValidationFrequency)] = Field(
        default=ValidationFrequency.PER_EPOCH,
        description=(
            "'per_epoch' (every validate_every_n_epochs epochs) or 'every_n_steps' "
            "(every validation.every_n_steps optimizer steps)."
        ),
    )
    every_n_steps: PositiveInt | None = Field(
        default=None,
        description="Validation interval in optimizer steps for 'every_n_steps' (>= 1).",
    )
    aggregation: Annotated[ValAggregation, enum_field(ValAggregation)] = Field(
        default=ValAggregation.MICRO_AVG_WEIGHTED_BY_SAMPLES,
        description=(
            "How val/<metric> combines loaders: 'micro_avg_weighted_by_samples', "
            "'macro_avg_equal_loaders', 'primary_metric_per_loader' or 'custom' (aggregation_fn)."
        ),
    )
    aggregation_fn: Annotated[
        Callable[..., Any] | str | None, BeforeValidator(check_aggregation_fn)
    ] = Field(
        default=None,
        description=(
            "For 'custom': fn(metrics_by_loader) -> dict, or its dotted path "
            "'package.module.function' (imported when first used). A callable is saved as its "
            "dotted path, so it must be defined at module level."
        ),
    )
    primary_metric: str = Field(
        default="loss",
        min_length=1,
        description="Metric reported per loader by 'primary_metric_per_loader'.",
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        if self.frequency is ValidationFrequency.EVERY_N_STEPS and self.every_n_steps is None:
            issues.append(
                (
                    "every_n_steps",
                    "required when frequency is 'every_n_steps'; give the "
                    "interval in optimizer steps",
                )
            )
        if self.aggregation is ValAggregation.CUSTOM and self.aggregation_fn is None:
            issues.append(
                (
                    "aggregation_fn",
                    "required when aggregation is 'custom'; give a function "
                    "fn(metrics_by_loader) -> dict or its dotted path",
                )
            )
        return issues

    def resolve_aggregation_fn(self) -> Callable[..., Any] | None:
        """Return ``aggregation_fn`` as a callable, importing it when given as a dotted path.

        Returns:
            The callable, or None when none is configured.

        Raises:
            ConfigError: when the path cannot be imported or does not name a callable.
        """
        value = self.aggregation_fn
        if value is None or callable(value):
            return value
        path = f"{self._field_path}.aggregation_fn" if self._field_path else "aggregation_fn"
        return import_callable(value, path)
