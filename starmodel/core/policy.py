"""Entity-level permissions: who may read, create, update and delete records, and run events.

Declared in ``model_config["policy"]``; each rule is ``True`` / ``False`` or a callable
``rule(ctx) -> bool`` given the ``CallContext`` (``ctx.user``, and ``ctx.entity`` for a record
being changed)::

    class Product(Entity, table=True):
        model_config = {"policy": {"read": True, "create": signed_in, "*": staff}}

``"*"`` is the rule of every action not named; an entity without a policy allows everything
(as do actions a policy does not name when it has no ``"*"``). An event's own
``@event(allow=...)`` wins over the policy's ``"events"`` rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starmodel.core.errors import ConfigurationError

if TYPE_CHECKING:
    from starmodel.core.context import CallContext

__all__ = ["ACTIONS", "Policy", "Rule"]

Rule = bool | Callable[["CallContext"], bool]
ACTIONS = ("read", "create", "update", "delete", "events")


@dataclass(frozen=True)
class Policy:
    """The checked form of ``model_config["policy"]``."""

    rules: Mapping[str, Rule]

    @classmethod
    def parse(cls, raw: Any, owner: str) -> Policy | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ConfigurationError(
                f"{owner}: policy must be a dict such as {{'read': True, '*': is_staff}}, not {raw!r}"
            )
        rules: dict[str, Rule] = {}
        for action, rule in raw.items():
            if action != "*" and action not in ACTIONS:
                raise ConfigurationError(
                    f"{owner}: policy action {action!r} is unknown; use {', '.join(ACTIONS)} or '*'"
                )
            if not isinstance(rule, bool) and not callable(rule):
                raise ConfigurationError(
                    f"{owner}: policy rule for {action!r} must be True, False or a function of the "
                    f"call context, not {rule!r}"
                )
            rules[action] = rule
        return cls(rules)

    def rule(self, action: str) -> Rule:
        """The rule deciding ``action`` (``True`` when nothing is said about it)."""
        return self.rules.get(action, self.rules.get("*", True))

    def allows(self, action: str, ctx: CallContext) -> bool:
        rule = self.rule(action)
        if isinstance(rule, bool):
            return rule
        return bool(rule(ctx))
