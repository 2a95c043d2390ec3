"""doveadm's HTTP API (Dovecot's /doveadm/v1): run a doveadm command over the network.

One client for every caller (quota readings, the health page): the API key,
the timeout and every way the call can fail are handled here, and a failure is
always a DoveadmError whose message names what went wrong but never the key.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field


class DoveadmError(Exception):
    """doveadm could not be asked, refused the command, or its answer made no sense."""


@dataclass(frozen=True)
class Doveadm:
    url: str
    api_key: str = field(repr=False)
    timeout: float

    def _fail(self, message: str) -> DoveadmError:
        # Whatever a library put in its message (a URL, an echoed header), the key leaves out.
        for secret in {self.api_key, self._encoded_key()}:
            if secret:
                message = message.replace(secret, "***")
        return DoveadmError(message)

    def _encoded_key(self) -> str:
        return base64.b64encode(self.api_key.encode()).decode()

    def _call(self, body: bytes | None) -> object:
        if not self.url:
            raise DoveadmError("DOVEADM_URL is not configured")
        headers = {"Authorization": "X-Dovecot-API " + self._encoded_key()}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.url, data=body, method="GET" if body is None else "POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise self._fail(f"doveadm answered HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            raise self._fail(f"doveadm unreachable at {self.url}: {reason}") from e
        except ValueError as e:  # not JSON (also a bad URL)
            raise self._fail(f"doveadm gave an unreadable answer: {e}") from e

    def commands(self) -> object:
        """The API's list of commands: proves the service answers and accepts the key."""
        return self._call(None)

    def run(self, command: str, parameters: dict, tag: str = "panel") -> list:
        """One command, e.g. run("quotaGet", {"allUsers": True}): the rows of its answer."""
        payload = self._call(json.dumps([[command, parameters, tag]]).encode())
        # [["doveadmResponse", rows, tag]], or [["error", {"type", "exitCode"}, tag]].
        try:
            kind, rows = payload[0][0], payload[0][1]
        except (TypeError, IndexError, KeyError) as e:
            raise self._fail(f"doveadm gave an unexpected answer: {str(payload)[:200]}") from e
        if kind != "doveadmResponse":
            raise self._fail(f"doveadm refused {command}: {json.dumps(rows)[:200]}")
        if not isinstance(rows, list):
            raise self._fail(f"doveadm gave an unexpected answer: {str(payload)[:200]}")
        return rows
