"""Making data strings safe for a terminal (RELIABILITY.md, Output).

Rich parses ``[...]`` as markup (``[/foo]`` raises, ``[link=…]`` makes a hyperlink) and passes
terminal escape sequences through; a user name or product is data, so both are neutralised.
"""

from __future__ import annotations

import re

from rich.markup import escape

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: object) -> str:
    """Data → text that Rich prints literally, without control characters."""
    if value is None:
        return ""
    text = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", str(value))
    return escape(text.replace("\n", " ").replace("\t", " "))
