"""Public-holiday calendar for forecasting: a well-kept package (``holidays``) plus a site's own dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import holidays


@dataclass(frozen=True)
class HolidayCalendar:
    """Public holidays of one country (and optional subdivision) plus extra local dates (events, closures).

    Vietnam (``VN``) includes Tết (Lunar New Year's Eve to the fifth day) as the ``holidays`` package publishes
    it; a site adds its own days off (a bridge day the government announces, a festival) with ``extra``.
    """

    country: str = "VN"
    subdiv: str | None = None
    extra: frozenset[dt.date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _check_country(self.country, self.subdiv)

    def dates(self, first_year: int, last_year: int) -> frozenset[dt.date]:
        """All holiday dates of the years ``first_year`` … ``last_year`` (inclusive)."""
        return _country_dates(self.country, self.subdiv, first_year, last_year) | self.extra

    def named(self, first_year: int, last_year: int) -> dict[dt.date, str]:
        """Holiday date → name (extra dates are named "extra"), to match a holiday with last year's."""
        names = {d: "extra" for d in self.extra}
        names.update(_country_names(self.country, self.subdiv, first_year, last_year))
        return names

    @classmethod
    def for_timezone(cls, timezone: str) -> HolidayCalendar:
        """The calendar of the country an IANA time zone belongs to (``America/Chicago`` → US)."""
        return cls(country=country_of_timezone(timezone))


@lru_cache(maxsize=64)
def _check_country(country: str, subdiv: str | None) -> None:
    try:
        holidays.country_holidays(country, subdiv=subdiv, years=2020)
    except NotImplementedError:
        raise ValueError(f"unknown holiday country {country!r} (an ISO 3166 alpha-2 code, e.g. VN)") from None


@lru_cache(maxsize=64)
def _country_dates(country: str, subdiv: str | None, first_year: int, last_year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=range(first_year, last_year + 1)))


@lru_cache(maxsize=64)
def _country_names(country: str, subdiv: str | None, first_year: int, last_year: int) -> dict[dt.date, str]:
    return dict(holidays.country_holidays(country, subdiv=subdiv, years=range(first_year, last_year + 1)))


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """IANA zone → country code, from the zone.tab the ``tzdata`` package ships."""
    text = resources.files("tzdata").joinpath("zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _coords, zone, *_ = line.split("\t")
            table[zone] = code
    return table


def country_of_timezone(timezone: str) -> str:
    try:
        return _zone_countries()[timezone]
    except KeyError:
        raise ValueError(f"time zone {timezone!r} belongs to no country in zone.tab; give the country explicitly")\
            from None
