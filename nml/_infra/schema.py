"""The base of every params section and the error a bad params file raises.

Each chapter owns its section of the params (``nml/chapters/chNN_*/config.py``); ``nml.config``
assembles them into the root ``Params``. Sections forbid unknown keys and validate assignments.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NoiseRatio = Annotated[float, Field(ge=0.0, lt=1.0, description="noise ratio in [0, 1)")]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]


class ParamsError(ValueError):
    """A params file or override is invalid; the message names each bad key."""


class Section(BaseModel):
    """A section of the params: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
