"""Call rates such as ``"10/minute"``: how often one caller may run an event
(``@event(rate="10/minute")``), read once when the class is defined; and the port that counts
the calls (``CallCounter``)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from starmodel.core.errors import ConfigurationError

__all__ = ["CallCounter", "Rate", "parse_rate"]

_UNITS = {"second": 1, "minute": 60, "hour": 3600}
_PATTERN = re.compile(r"^\s*(\d{1,9})\s*/\s*(second|minute|hour)s?\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``calls`` calls per ``seconds``, counted in fixed windows that start with a
    caller's first call."""

    calls: int
    seconds: int

    def __str__(self) -> str:
        unit = next(name for name, size in _UNITS.items() if size == self.seconds)
        return f"{self.calls}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"N/second"``, ``"N/minute"`` or ``"N/hour"`` (N >= 1) as a ``Rate``; anything else
    raises ``ConfigurationError`` naming the forms that work."""
    found = _PATTERN.match(text) if isinstance(text, str) else None
    if found is None or int(found.group(1)) < 1:
        raise ConfigurationError(
            f"rate must look like '10/minute' (a whole number >= 1, then /second, /minute or "
            f"/hour), not {text!r}"
        )
    return Rate(int(found.group(1)), _UNITS[found.group(2)])


class CallCounter(ABC):
    """The port: count one call under ``key`` in its ``rate`` window."""

    @abstractmethod
    async def count(self, key: str, rate: Rate) -> tuple[int, float]:
        """Count one call; return the calls counted in the current window (this one
        included) and the seconds until that window ends."""
