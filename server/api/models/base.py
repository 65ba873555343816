"""What every response model shares: unknown keys pass, numbers stay whole, ranges say what was served.

The routes build plain dicts; FastAPI validates them against these models. Every model lets a key it
does not name through (``extra="allow"``): a field a route adds before its model does still reaches the
client instead of vanishing. Numbers that are sometimes whole are ``int | float`` so that a ``180`` is not
sent as ``180.0``. Times are ISO-8601 strings with an offset (the city's time zone unless said).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Number = int | float


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class RangeOut(Out):
    """The range actually served: ``[from, to)``."""

    from_: str = Field(alias="from")
    to: str


class LatLon(Out):
    lat: float
    lon: float
