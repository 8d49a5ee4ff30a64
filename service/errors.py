"""The one error type the HTTP layer maps to a response."""

from __future__ import annotations


class ApiError(Exception):
    """A client-facing error: HTTP status, a stable code and a readable message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.close = close
        """The connection cannot carry another request (its body was not read to its end)."""

    def body(self) -> dict[str, str]:
        """The JSON body of the error response."""
        return {"error": self.code, "message": self.message}
