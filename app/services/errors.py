"""Domain errors. Each door turns them into its own form (field message, 4xx JSON, exit code)."""

from __future__ import annotations

from contextlib import contextmanager


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
    """A contract allowance has no room for the accounts asked for in a class of service."""

    def __init__(
        self,
        message: str,
        *,
        service_class: str,
        allowance: int,
        used: int,
        service_class_id: int,
        customer_id: int,
        wanted: int = 1,
    ):
        super().__init__(message, field="service_class")
        self.service_class = service_class
        self.allowance = allowance
        self.used = used
        self.service_class_id = service_class_id
        self.customer_id = customer_id
        self.wanted = wanted  # how many more were asked for at once

    @property
    def missing(self) -> int:
        """How many accounts of the class the contract lacks for what was asked."""
        return max(0, self.used + self.wanted - self.allowance)


class CreditTooLow(Conflict):
    """A Pay-per-Use balance that cannot pay one more day of what a change would cost. HTTP 409.

    Not a field's message: the form shows it beside itself, with the way out (a recharge)."""

    def __init__(self, message: str, *, customer_id: int, balance: int, daily_cost: int):
        super().__init__(message)
        self.customer_id = customer_id
        self.balance = balance  # centipoints
        self.daily_cost = daily_cost  # centipoints a day after the change


class FieldErrors:
    """Problems per field, gathered so that a form (or a sheet row) shows every one at once.

        problems = FieldErrors()
        name = problems.collect(fields.text, value, "name", max_len=200)  # None if refused
        with problems.catching():
            local, domain = ...  # several steps that stand or fall together
        problems.raise_if_any()

    The first message for a field is kept: it names the first thing to fix.
    """

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self._raised: list[ValidationError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def record(self, error: ValidationError) -> None:
        self._raised.append(error)
        for field, message in error.errors.items():
            self.add(field, message)

    def collect(self, reader, *args, **kwargs):
        """reader(*args, **kwargs), or None with its fields recorded when it raises ValidationError."""
        try:
            return reader(*args, **kwargs)
        except ValidationError as e:
            self.record(e)
            return None

    @contextmanager
    def catching(self):
        """Record a ValidationError raised in the block and go on after it."""
        try:
            yield self
        except ValidationError as e:
            self.record(e)

    def __contains__(self, field: str) -> bool:
        return field in self.errors

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        if len(self._raised) == 1 and self._raised[0].errors == self.errors:
            # One refusal and nothing else: raised as it came, so its kind (a subclass) is kept.
            raise self._raised[0]
        raise ValidationError(self.errors)
