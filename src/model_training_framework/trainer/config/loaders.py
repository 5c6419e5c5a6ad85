"""How several train or validation loaders share an epoch: ``MultiDataLoaderConfig``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from model_training_framework.config.loading import ConfigModel
from model_training_framework.errors import ConfigError
from model_training_framework.trainer.config.fields import (
    Name,
    PositiveFiniteFloat,
    PositiveInt,
    check_unique,
    enum_field,
)
from model_training_framework.trainer.data.schedule import EpochLengthPolicy, SamplingStrategy

__all__ = ["MultiDataLoaderConfig"]


def _names_as_list(value: Any) -> Any:
    if isinstance(value, str):  # dataloader_names="main": pydantic says only "a valid list"
        raise ValueError(f"must be a list of names, even for one loader: [{value!r}]")
    return value


class MultiDataLoaderConfig(ConfigModel):
    """How several dataloaders share one epoch: order, epoch length, cycling (docs/multi_loader.md)."""

    sampling_strategy: Annotated[SamplingStrategy, enum_field(SamplingStrategy)] = Field(
        default=SamplingStrategy.ROUND_ROBIN,
        description=(
            "Which loader gives the next batch: 'sequential' (all of loader 0, then loader 1, "
            "...), 'round_robin' (loaders take turns, burst_size batches each), 'weighted' "
            "(proportions from dataloader_weights) or 'alternating' (follow alternating_pattern)."
        ),
    )
    dataloader_names: Annotated[
        list[Name] | None, BeforeValidator(_names_as_list), AfterValidator(check_unique)
    ] = Field(
        default=None,
        min_length=1,
        description=(
            "One unique name per loader, used in metric keys (train/dl_<name>/...) and passed to "
            "the step functions. Only letters, digits, '.', '_' and '-'. None: dl0, dl1, ..."
        ),
    )
    dataloader_weights: list[PositiveFiniteFloat] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Relative share of batches per loader for 'weighted' sampling; one finite value > 0 "
            "per loader, need not sum to 1."
        ),
    )
    alternating_pattern: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Loader indices visited cyclically by 'alternating' sampling, e.g. [0, 0, 1]; each "
            "entry takes burst_size consecutive batches."
        ),
    )
    epoch_length_policy: Annotated[EpochLengthPolicy, enum_field(EpochLengthPolicy)] = Field(
        default=EpochLengthPolicy.SUM_OF_LENGTHS,
        description=(
            "How long an epoch is: 'sum_of_lengths' (every batch once), 'max_of_lengths', "
            "'min_of_lengths' or 'fixed_num_steps' (steps_per_epoch micro-batches; the only "
            "policy allowed for loaders without a length)."
        ),
    )
    steps_per_epoch: PositiveInt | None = Field(
        default=None,
        description="Micro-batches per epoch under 'fixed_num_steps' (batches, >= 1).",
    )
    cycle_short_loaders: bool = Field(
        default=True,
        description=(
            "When a loader runs out before its share of the epoch: true starts a new pass of it "
            "(reshuffled), false drops its remaining slots so the epoch gets shorter."
        ),
    )
    burst_size: PositiveInt = Field(
        default=1,
        description="Consecutive batches a loader gives per turn (batches, >= 1).",
    )

    def _cross_field_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        strategy, names = self.sampling_strategy, self.dataloader_names
        if strategy is SamplingStrategy.WEIGHTED and self.dataloader_weights is None:
            issues.append(
                (
                    "dataloader_weights",
                    "required when sampling_strategy is 'weighted'; give "
                    "one weight > 0 per loader, e.g. [0.7, 0.3]",
                )
            )
        if strategy is SamplingStrategy.ALTERNATING and self.alternating_pattern is None:
            issues.append(
                (
                    "alternating_pattern",
                    "required when sampling_strategy is 'alternating'; "
                    "give loader indices, e.g. [0, 0, 1]",
                )
            )
        if (
            self.epoch_length_policy is EpochLengthPolicy.FIXED_NUM_STEPS
            and self.steps_per_epoch is None
        ):
            issues.append(
                (
                    "steps_per_epoch",
                    "required when epoch_length_policy is 'fixed_num_steps'; "
                    "give the number of micro-batches per epoch",
                )
            )
        weights = self.dataloader_weights
        if names is not None and weights is not None and len(weights) != len(names):
            issues.append(
                (
                    "dataloader_weights",
                    f"has {len(weights)} entries but dataloader_names has {len(names)}; "
                    "give one weight per named loader",
                )
            )
        if names is not None and self.alternating_pattern is not None:
            bad = sorted({i for i in self.alternating_pattern if i >= len(names)})
            if bad:
                issues.append(
                    (
                        "alternating_pattern",
                        f"indices {bad} are out of range for "
                        f"{len(names)} dataloader_names (valid: 0..{len(names) - 1})",
                    )
                )
        return issues

    def ignored_settings(self) -> list[str]:
        """Settings the schedule does not read under this strategy and epoch length policy.

        Not errors (a sweep may switch the strategy while the base config keeps its weights),
        but ``fit`` names each in a warning.

        Returns:
            Lines ``"<field>=<value> has no effect: it applies only with ..."``.
        """
        strategy, policy = self.sampling_strategy, self.epoch_length_policy
        now = f"sampling_strategy is '{strategy.value}'"
        unused: list[tuple[str, object, str, str]] = []
        if self.steps_per_epoch is not None and policy is not EpochLengthPolicy.FIXED_NUM_STEPS:
            unused.append(
                (
                    "steps_per_epoch",
                    self.steps_per_epoch,
                    "epoch_length_policy 'fixed_num_steps'",
                    f"epoch_length_policy is '{policy.value}'",
                )
            )
        if self.dataloader_weights is not None and strategy is not SamplingStrategy.WEIGHTED:
            unused.append(("dataloader_weights", self.dataloader_weights, "'weighted'", now))
        if self.alternating_pattern is not None and strategy is not SamplingStrategy.ALTERNATING:
            unused.append(("alternating_pattern", self.alternating_pattern, "'alternating'", now))
        if self.burst_size != 1 and strategy is SamplingStrategy.SEQUENTIAL:
            unused.append(("burst_size", self.burst_size, "the other strategies", now))
        return [
            f"{field}={value!r} has no effect: it applies only with {applies}, and {current}"
            for field, value, applies, current in unused
        ]

    def validate_against_loaders(self, num_loaders: int, field_path: str) -> None:
        """Check names, weights and pattern against the loaders actually given to ``fit``.

        Args:
            num_loaders: number of loaders in the list given to ``fit`` (>= 1).
            field_path: where this config sits, e.g. ``"train_loader_config"``.

        Raises:
            ConfigError: (a ``ValueError``) naming the field, the counts and the fix.
        """
        kind = _loader_kind(field_path)
        if num_loaders < 1:
            raise ConfigError(f"fit() got no {kind}loaders; pass a non-empty list of DataLoaders")
        got = f"fit() got {num_loaders} {kind}loader{'s' if num_loaders != 1 else ''}"
        if self.dataloader_names is not None and len(self.dataloader_names) != num_loaders:
            raise ConfigError(
                f"{field_path}.dataloader_names has {len(self.dataloader_names)} entries but "
                f"{got}; give one name per loader"
            )
        if self.dataloader_weights is not None and len(self.dataloader_weights) != num_loaders:
            raise ConfigError(
                f"{field_path}.dataloader_weights has {len(self.dataloader_weights)} entries "
                f"but {got}; give one weight per loader"
            )
        if self.alternating_pattern is not None:
            bad = sorted({i for i in self.alternating_pattern if i >= num_loaders})
            if bad:
                raise ConfigError(
                    f"{field_path}.alternating_pattern uses loader indices {bad} but {got}; "
                    f"use indices 0..{num_loaders - 1}"
                )

    def resolved_names(self, num_loaders: int) -> list[str]:
        """Return the configured names, or ``dl0, dl1, ...`` when none are configured.

        Args:
            num_loaders: number of loaders.

        Returns:
            One name per loader.

        Raises:
            ConfigError: when the configured names do not match ``num_loaders``.
        """
        if self.dataloader_names is None:
            return [f"dl{i}" for i in range(num_loaders)]
        self.validate_against_loaders(num_loaders, self._field_path or "dataloader config")
        return list(self.dataloader_names)


def _loader_kind(field_path: str) -> str:
    last = field_path.rsplit(".", 1)[-1]
    if last.endswith("_loader_config"):
        return last.removesuffix("_loader_config") + " "
    return ""
