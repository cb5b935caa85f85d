"""The few typed errors Haven raises, each carrying how it appears on the wire.

Exception text never reaches a client: only `code`, the fixed human `message` of the class,
`retryable` and, for errors that end a socket, the close code.
"""

from __future__ import annotations


class CloseCode:
    """The published WebSocket close codes (docs/protocol.md, "Close codes")."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    INVALID_TOKEN = 4001  # terminal: log in again
    TOKEN_EXPIRED = 4002  # retryable with a fresh token
    TOO_MANY_CONNECTIONS = 4003  # terminal: the user has the maximum number of sockets open
    LOGGED_OUT = 4004  # terminal: the token was revoked
    ACCOUNT_DELETED = 4010  # terminal: the account was erased
    RATE_LIMITED = 4008  # retryable after a pause
    SLOW_CONSUMER = 4009  # retryable: the client stopped reading


# Whether a client should reconnect after each close code (the published table).
RETRYABLE_CLOSE_CODES: dict[int, bool] = {
    CloseCode.NORMAL: False,
    CloseCode.GOING_AWAY: True,
    CloseCode.POLICY_VIOLATION: False,
    CloseCode.MESSAGE_TOO_BIG: True,
    CloseCode.INTERNAL_ERROR: True,
    CloseCode.SERVICE_RESTART: True,
    CloseCode.INVALID_TOKEN: False,
    CloseCode.TOKEN_EXPIRED: True,
    CloseCode.TOO_MANY_CONNECTIONS: False,
    CloseCode.LOGGED_OUT: False,
    CloseCode.RATE_LIMITED: True,
    CloseCode.SLOW_CONSUMER: True,
    CloseCode.ACCOUNT_DELETED: False,
}


class HavenError(Exception):
    code: str = "internal_error"
    message: str = "Something went wrong on our side. Please try again."
    retryable: bool = True
    http_status: int = 500
    close_code: int | None = None  # set when the error ends the socket
    retry_after: float | None = None

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if message is not None:
            self.message = message
        if retry_after is not None:
            self.retry_after = round(retry_after, 3)
        super().__init__(self.code)

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses Ray process boundaries intact (code, message and retry_after included).
        return (_rebuild, (type(self), self.code, self.message, self.retry_after))


def _rebuild(
    cls: type[HavenError], code: str, message: str, retry_after: float | None
) -> HavenError:
    return cls(code, message, retry_after=retry_after)


class InvalidToken(HavenError):
    code = "invalid_token"
    message = "The access token is missing or invalid. Please log in again."
    retryable = False
    http_status = 401
    close_code = CloseCode.INVALID_TOKEN


class TokenExpired(InvalidToken):
    # Same wire code as an invalid token (the seed's clients switch on it), but a fresh
    # token fixes it, so the close code is the retryable one.
    message = "The access token has expired. Please log in again."
    retryable = True
    close_code = CloseCode.TOKEN_EXPIRED


class InvalidMessage(HavenError):
    """The client's own mistake in one frame; the socket stays open."""

    code = "invalid_message"
    message = "The message could not be understood."
    retryable = False
    http_status = 422


class SessionNotFound(HavenError):
    # Also the answer for another user's session: its existence is never revealed.
    code = "session_not_found"
    message = "That session does not exist."
    retryable = False
    http_status = 404


class UsernameTaken(HavenError):
    code = "username_taken"
    message = "That username is already taken."
    retryable = False
    http_status = 409


class SafetyUnavailable(HavenError):
    code = "safety_unavailable"
    message = "We could not check your message safely just now. Please send it again."
    retryable = True
    http_status = 503


class GenerationFailed(HavenError):
    code = "generation_failed"
    message = "The reply could not be completed. Please try again."
    retryable = True
    http_status = 503


class Busy(HavenError):
    code = "busy"
    message = "Too many messages are waiting for a reply. Please wait a moment and try again."
    retryable = True
    http_status = 429


class RateLimited(HavenError):
    code = "rate_limited"
    message = "You are sending messages too quickly. Please wait a moment."
    retryable = True
    http_status = 429
    close_code = CloseCode.RATE_LIMITED


class TooManyConnections(HavenError):
    code = "too_many_connections"
    message = "You have too many connections open. Close one and try again."
    retryable = False
    http_status = 429
    close_code = CloseCode.TOO_MANY_CONNECTIONS


class ConnectingTooOften(HavenError):
    code = "connecting_too_often"
    message = "Too many new connections in a short time. Please wait a moment."
    retryable = True
    http_status = 429
    close_code = CloseCode.RATE_LIMITED


class LoggedOut(InvalidToken):
    code = "logged_out"
    message = "You have logged out. Please log in again."
    close_code = CloseCode.LOGGED_OUT


class SlowConsumer(HavenError):
    code = "slow_consumer"
    message = "The connection fell too far behind. Please reconnect."
    retryable = True
    close_code = CloseCode.SLOW_CONSUMER


class FrameTooLarge(HavenError):
    code = "frame_too_large"
    message = "The frame is larger than allowed."
    retryable = False
    close_code = CloseCode.MESSAGE_TOO_BIG


class InvalidCredentials(HavenError):
    # One answer for a wrong password and an unknown username: neither is revealed.
    code = "invalid_credentials"
    message = "Wrong username or password."
    retryable = False
    http_status = 401


class TooManyLoginAttempts(HavenError):
    # Per account and per client address; the right password is refused too until it passes.
    code = "too_many_login_attempts"
    message = "Too many failed logins. Please wait before trying again."
    retryable = True
    http_status = 429


class TooManyRegistrations(HavenError):
    code = "too_many_registrations"
    message = "Too many accounts were created from your address. Please try again later."
    retryable = True
    http_status = 429


class RequestTooLarge(HavenError):
    code = "request_too_large"
    message = "The request body is larger than allowed."
    retryable = False
    http_status = 413


class InvalidRequest(HavenError):
    """A REST request body or parameter that does not validate (the 422's `code`)."""

    code = "invalid_request"
    message = "The request is not valid; see the field errors."
    retryable = False
    http_status = 422


class Forbidden(HavenError):
    # The token is valid but its role may not do this; for a socket frame the socket stays open.
    code = "forbidden"
    message = "Your account is not allowed to do that."
    retryable = False
    http_status = 403


class NotFound(HavenError):
    # Anything but a session of one's own (those answer `session_not_found`): an account, or a
    # conversation a counsellor may not see. What exists is never revealed.
    code = "not_found"
    message = "Not found."
    retryable = False
    http_status = 404


class AlreadyJoined(HavenError):
    # One counsellor per conversation at a time; the socket stays open.
    code = "already_joined"
    message = "Another counsellor is already in this conversation."
    retryable = False
    http_status = 409


class UnsafeMessage(HavenError):
    # A counsellor's message that the output screen stops (means or method detail): nothing
    # is stored or sent to the person; the counsellor can rephrase.
    code = "unsafe_message"
    message = "That message was not sent: it failed the safety check. Please rephrase it."
    retryable = False
    http_status = 422


class AccountDeleted(InvalidToken):
    # Every socket of an account closes with it when the account is erased (`DELETE /me`, or
    # `haven users delete`, noticed by the connection hosts' account check).
    code = "account_deleted"
    message = "This account was deleted."
    close_code = CloseCode.ACCOUNT_DELETED


class WrongPassword(HavenError):
    # A password re-entered to confirm an irreversible step; counted like a failed login. Not
    # 401: the token itself is fine.
    code = "wrong_password"
    message = "That password is not correct."
    retryable = False
    http_status = 403


class TooManyExports(HavenError):
    code = "too_many_exports"
    message = "Too many exports in a short time. Please try again later."
    retryable = True
    http_status = 429


class StoredDataUnreadable(HavenError):
    # A sealed value failed its integrity check (altered, or moved from another row), or its
    # key is gone: refused rather than shown as garbage, and logged without its content.
    code = "stored_data_unreadable"
    message = "Some stored data could not be read."
    retryable = False
    http_status = 500
