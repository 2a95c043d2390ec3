"""Domain errors. Each door turns them into its own form (field message, 4xx JSON, exit code)."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(DomainError):
    """Bad input: a message per field. HTTP 422."""

    status = 422

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))

    @classmethod
    def one(cls, field: str, message: str) -> ValidationError:
        return cls({field: message})


class NotFound(DomainError):
    """Does not exist, or is not the caller's to see: both look the same. HTTP 404."""

    status = 404


class PermissionDenied(DomainError):
    status = 403


class Conflict(DomainError):
    """Clashes with existing state (a duplicate address, say). HTTP 409."""

    status = 409

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class LimitExceeded(Conflict):
    """A contract allowance is used up for a class of service."""

    def __init__(
        self,
        message: str,
        *,
        service_class: str,
        allowance: int,
        used: int,
        service_class_id: int,
        customer_id: int,
    ):
        super().__init__(message, field="service_class")
        self.service_class = service_class
        self.allowance = allowance
        self.used = used
        self.service_class_id = service_class_id
        self.customer_id = customer_id
