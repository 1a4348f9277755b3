"""Who is asking: the verified attributes of an API caller and the authorizations they imply."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.labels import Authorizations


@dataclass(frozen=True)
class Caller:
    subject: str
    org: str | None = None
    clearance: str | None = "PUBLIC"
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    anonymous: bool = False
    # The token's ``iss``: with ``subject`` it names the caller (grants are keyed by both); None for the
    # anonymous caller.
    issuer: str | None = None
    # The token's ``exp`` (Unix seconds); None for the anonymous caller. A websocket authenticated once
    # at connection_init is closed when it passes, so a subscription cannot outlive its token.
    expires_at: float | None = field(default=None, compare=False)
    # Derived once: the guard keys its per-caller label cache on this value.
    authorizations: Authorizations = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        auths = Authorizations.from_claims(
            clearance=self.clearance, org=self.org, roles=self.roles, groups=self.groups
        )
        object.__setattr__(self, "clearance", auths.classification)
        object.__setattr__(self, "authorizations", auths)

    @property
    def principal(self) -> str:
        """Who the caller is, for anything kept per caller (caps, cursors): the issuer and the subject
        together, since two issuers may each have a subject of the same name; the bare subject for a
        caller without an issuer (the anonymous one)."""
        return self.subject if self.issuer is None else f"{self.issuer} {self.subject}"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# No token: PUBLIC clearance and no tokens at all, so only classification=PUBLIC data is visible.
ANONYMOUS = Caller(subject="anonymous", anonymous=True)
