"""Who may open a session on the ``opcua`` sink's server.

Two checks, each where it is configured: the client application's certificate (the one
its secure channel is signed with) must be one of ``trusted_certificates``, and its login
(the user identity token) must hold. Where a password and certificates are both
configured, both must hold. A login of a kind not configured is refused first
(BadIdentityTokenRejected); one that fails a check gets BadUserAccessDenied.

| configured       | no login | right password | wrong password | cert login | untrusted app |
|------------------|----------|----------------|----------------|------------|---------------|
| password         | refused  | in             | refused        | refused    | as trusted    |
| password, anon.  | in       | in             | refused        | refused    | as trusted    |
| certs            | refused  | refused        | refused        | in         | refused       |
| certs, anon.     | in       | refused        | refused        | in         | refused       |
| both             | refused  | in             | refused        | refused    | refused       |
| both, anon.      | in       | in             | refused        | refused    | refused       |
| anon. only       | in       | refused        | refused        | refused    | as trusted    |

"both": username and password and ``trusted_certificates``; "anon.": ``allow_anonymous``.
The first four columns are from an application whose certificate is trusted, the last any
login from one whose certificate is not ("as trusted": without ``trusted_certificates`` a
certificate only encrypts). A certificate login (an X509 identity token) needs its own
certificate trusted as well as the application's, and is offered only where no password is
configured, as it carries none. Credentials a client sends are checked even where it could
have come in anonymously. Each refusal is one log line (``opcua_login_refused``: reason and
client address, never the password) and counted by reason.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any, Literal

import structlog
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes

from inspector.sinks.opcua.settings import OpcUaSettings

log = structlog.get_logger(__name__)

Reason = Literal["not_offered", "invalid_token", "certificate", "password"]
REASONS: tuple[Reason, ...] = ("not_offered", "invalid_token", "certificate", "password")
_STATUS_REASONS: dict[int, Reason] = {
    StatusCodes.BadIdentityTokenRejected: "not_offered",
    StatusCodes.BadIdentityTokenInvalid: "invalid_token",
}
_STATUS_NAMES = frozenset({"BadIdentityTokenRejected", "BadIdentityTokenInvalid",
                           "BadUserAccessDenied"})  # fmt: skip


def identity_tokens(settings: OpcUaSettings) -> list[type]:
    """The identity token kinds the endpoints offer: only those a login can succeed with."""
    tokens: list[type] = []
    if settings.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if settings.username is not None:
        tokens.append(ua.UserNameIdentityToken)
    elif settings.trusted_certificates:
        tokens.append(ua.X509IdentityToken)
    return tokens


class _TokenCertificate(bytes):
    """An X509 identity token's certificate, with the application certificate of the channel
    it came over: asyncua hands the user manager one certificate, the token's in place of
    the channel's, and both must be trusted."""

    channel: bytes | None = None


class _Refused(ServiceError):
    def __init__(self, reason: Reason, why: str) -> None:
        super().__init__(StatusCodes.BadUserAccessDenied)
        self.reason, self.why = reason, why


class Gate(UserManager):
    """The decision of the table above, for asyncua; counts refusals by reason."""

    def __init__(self, settings: OpcUaSettings, trusted: Sequence[bytes]) -> None:
        self.settings, self.trusted = settings, list(trusted)
        # a plain dict, copied whole by the metrics thread while this one counts
        self.refused: dict[str, int] = dict.fromkeys(REASONS, 0)

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None,
        certificate: Any = None,
    ) -> User | None:  # fmt: skip
        if isinstance(certificate, _TokenCertificate):
            kind, channel = "certificate", certificate.channel
        else:
            kind, channel = ("password" if username is not None else "anonymous"), certificate
        if self.trusted and not self._trusted(channel):
            raise _Refused("certificate", "the application certificate is not trusted")
        s = self.settings
        if kind == "certificate":
            # asyncua refuses the token where it is not offered; this holds should it not
            if s.username is not None:
                raise _Refused("not_offered", "a certificate login carries no password")
            if not self._trusted(certificate):
                raise _Refused("certificate", "the login certificate is not trusted")
            return User(role=UserRole.User, name="certificate")
        if kind == "password":
            if s.username is None or s.password is None or not _same(username, s.username) or (
                not _same(password, s.password.get_secret_value())
            ):  # fmt: skip
                raise _Refused("password", "wrong username or password")
            return User(role=UserRole.User, name=username)
        if not s.allow_anonymous:
            raise _Refused("not_offered", "anonymous access is off")
        return User(role=UserRole.User, name="anonymous")

    def _trusted(self, certificate: bytes | None) -> bool:
        # every entry compared, so the time taken says nothing about which one matched
        matches = [hmac.compare_digest(certificate or b"", der) for der in self.trusted]
        return certificate is not None and any(matches)

    def note_refusal(self, session: InternalSession, error: ServiceError) -> None:
        status = ua.StatusCode(ua.UInt32(error.code))
        reason: str
        if isinstance(error, _Refused):
            reason, why = error.reason, error.why
        else:
            reason, why = _STATUS_REASONS.get(error.code, status.name), status.doc or status.name
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.warning("opcua_login_refused", client=str(session.name), reason=reason, why=why,
                    status=status.name)  # fmt: skip


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


class _Session(InternalSession):
    def activate_session(
        self, params: ua.ActivateSessionParameters, peer_certificate: bytes | None
    ) -> ua.ActivateSessionResult:
        self.channel_certificate = peer_certificate
        try:
            return super().activate_session(params, peer_certificate)
        except ServiceError as exc:
            gate = self.iserver.user_manager
            if isinstance(gate, Gate):
                gate.note_refusal(self, exc)
            raise


class GatedServer(InternalServer):
    """asyncua's internal server with sessions that tell the gate which application
    certificate a login came over, and log and count what it refuses."""

    def create_session(
        self, name: str, user: User | None = None, external: bool = False
    ) -> InternalSession:
        return _Session(self, self.aspace, self.subscription_service, name,
                        user=user or User(role=UserRole.Anonymous), external=external)  # fmt: skip

    def verify_x509_token(
        self, isession: Any, token: ua.X509IdentityToken, signature: ua.SignatureData
    ) -> bytes:
        certificate = _TokenCertificate(super().verify_x509_token(isession, token, signature))
        certificate.channel = getattr(isession, "channel_certificate", None)
        return certificate


class _QuietRefusals(logging.Filter):
    """Drops asyncua's own lines about a refused login: ``opcua_login_refused`` says it,
    once; asyncua would add one or two more at ERROR, as though the server had failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Rejected active session UserIdentityToken not supported":
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            str(record.msg).startswith("sending service fault response")
            and any(str(arg) in _STATUS_NAMES for arg in args)
        )


_QUIET = _QuietRefusals()
for _name in ("asyncua.server.uaprocessor", "asyncua.server.internal_session"):
    if _QUIET not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_QUIET)
