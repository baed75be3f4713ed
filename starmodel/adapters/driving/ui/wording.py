"""How the generated UI names an entity in its texts: ``OrderLine`` -> ``order line`` (``words``),
``order line`` -> ``order lines`` (``plural``)."""

from __future__ import annotations

__all__ = ["plural", "words"]


def words(name: str) -> str:
    """A class name as lower-case words: ``OrderLine`` -> ``order line``."""
    spaced = "".join(f" {c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return spaced.strip()


def plural(word: str) -> str:
    """``product`` -> ``products``, ``category`` -> ``categories``, ``box`` -> ``boxes``."""
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"
