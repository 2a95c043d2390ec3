"""An expat parser that reads plain XML only: any DTD or entity declaration is refused.

Uploaded spreadsheets (xlsx_rows) and requests from the Internet (autoconfig's Autodiscover)
are read with it, so no entity expansion ("billion laughs") nor external entity is possible.
"""

from __future__ import annotations

from xml.parsers import expat


def parser(refusal: type[Exception]) -> expat.XMLParserType:
    """A namespace-aware parser (names as "uri local") raising `refusal(message)` at a DTD or entity."""
    created = expat.ParserCreate(namespace_separator=" ")

    def refuse(*_args):
        raise refusal("DTDs and entities are not accepted")

    created.StartDoctypeDeclHandler = refuse
    created.EntityDeclHandler = refuse
    created.UnparsedEntityDeclHandler = refuse
    created.ExternalEntityRefHandler = refuse
    return created
