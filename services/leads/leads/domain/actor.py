"""Who is acting: a user from a token, or the system (an event, a job, a public form)."""
from __future__ import annotations

from dataclasses import dataclass

MANAGERS = ("sales_manager",)
SEE_ALL = ("admin", "general_manager")


@dataclass(frozen=True)
class Actor:
    id: str | None
    name: str | None = None
    roles: tuple[str, ...] = ()
    team: str | None = None

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def sees_all(self) -> bool:
        return self.has(*SEE_ALL)

    @property
    def is_manager(self) -> bool:
        return self.has(*MANAGERS) or self.sees_all

    @property
    def is_rep_only(self) -> bool:
        return self.has("sales_rep") and not self.is_manager


SYSTEM = Actor(id=None, name="system", roles=("system",))
