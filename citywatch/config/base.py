"""What every section shares: unknown keys are errors, ids follow the contract's pattern."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from citywatch.contract import ID_PATTERN, ClassName

Point = tuple[float, float]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class StrictModel(BaseModel):
    """A section in which an unknown key is an error (a typo must not be ignored silently)."""

    model_config = ConfigDict(extra="forbid")


def class_list(*names: ClassName) -> list[ClassName]:
    """A default list of classes, typed as the contract's class names (a list literal would be list[str])."""
    return list(names)
