"""``usagectl serve``: the vendors' usage endpoints over HTTP, answered from the database.

Thin on purpose: every route opens the database read-only for the request, calls the library
function the matching CLI view calls, and maps field names to the vendor's shape in one module
per vendor (:mod:`usagectl.server.leaf`). FastAPI and uvicorn are imported only here and only by
the ``serve`` command (start-up stays fast). :mod:`usagectl.server.tokens` imports neither, so the
command validates its tokens file before loading them.
"""
