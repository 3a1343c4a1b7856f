"""Canonical event columns and how source column names map onto them (SPEC §3.1).

A source column maps to a canonical column when its name, folded (lower case, everything but
letters and digits removed, so ``X-User-ID`` → ``xuserid``), equals the canonical name or one of
its aliases. ``--map canonical=source`` overrides the aliases. Every other column is kept in the
event's ``attributes`` JSON, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from usagectl.errors import UsageError, ValidationError

# Order matters: it is the column order of the events table and of the content hash.
CANONICAL: tuple[str, ...] = (
    "event_id",
    "ts",
    "owner_id",
    "user_id",
    "org_id",
    "product",
    "action",
    "resource_id",
    "status",
    "error_code",
    "endpoint",
    "method",
    "operation",
    "geometry",
    "dataset_id",
    "indicator_ids",
    "input_tokens",
    "output_tokens",
    "thinking_tokens",
    "credits",
    "response_time_ms",
    "session_id",
    "request_id",
)

# Without these a file cannot be ingested at all (owner_id may come from --owner instead).
# ``product`` is optional: a gateway log rarely has one (SPEC §3.1); the staging SQL still
# rejects a row that carries a geometry without a product (or ``--product``).
REQUIRED: tuple[str, ...] = ("ts", "owner_id", "user_id")

ALIASES: dict[str, tuple[str, ...]] = {
    "event_id": ("eventid", "eventuuid", "uuid", "id"),
    "ts": ("timestamp", "time", "createdat", "processedat", "eventtime", "eventts", "datetime",
           "occurredat", "finishedat", "completedat", "date"),
    "owner_id": ("owner", "ownerid", "apiowner", "apiownerid", "tenant", "tenantid", "licensee",
                 "licenseeid", "customer", "customerid", "accountid", "xownerid", "xtenantid"),
    "user_id": ("user", "userid", "xuserid", "leafuserid", "apikeyid", "apikey", "keyid",
                "username", "principal", "principalid"),
    "org_id": ("org", "orgid", "organization", "organizationid", "xorganizationid", "organisation",
               "organisationid", "xorgid", "department", "departmentid"),
    "product": ("productname", "producttype", "sku", "service"),
    "action": ("eventtype", "actiontype"),
    "resource_id": ("resourceid", "resource", "boundaryid", "fieldid", "fileid", "imageid",
                    "documentid"),
    "status": ("statuscode", "httpstatus", "httpstatuscode", "responsestatus", "result"),
    "error_code": ("errorcode", "error", "errortype"),
    "endpoint": ("path", "requestpath", "route", "urlpath"),
    "method": ("httpmethod", "requestmethod", "verb"),
    "operation": ("operationtype", "op", "operationname"),
    "geometry": ("geom", "wkt", "wkb", "geojson", "shape", "thegeom", "boundary", "footprint"),
    "dataset_id": ("datasetid", "dataset"),
    "indicator_ids": ("indicatorids", "indicators", "indicatorid", "indicator"),
    "input_tokens": ("inputtokens", "prompttokens", "tokensin", "tokens"),
    "output_tokens": ("outputtokens", "completiontokens", "tokensout"),
    "thinking_tokens": ("thinkingtokens", "reasoningtokens"),
    "credits": ("creditsused", "credit", "creditcost"),
    "response_time_ms": ("responsetimems", "responsetime", "latencyms", "latency", "durationms",
                         "elapsedms"),
    "session_id": ("sessionid", "conversationid", "threadid"),
    "request_id": ("requestid", "xrequestid", "traceid"),
}


def fold(name: str) -> str:
    """Fold a column name for alias matching: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


_FOLDED_CANONICAL = {fold(c): c for c in CANONICAL}
_FOLDED_ALIAS: dict[str, str] = {}
for _canon, _aliases in ALIASES.items():
    for _alias in _aliases:
        _FOLDED_ALIAS[_alias] = _canon


def accepted_names(canonical: str) -> list[str]:
    """The names (canonical first) that map to a canonical column, for error messages."""
    return [canonical, *ALIASES.get(canonical, ())]


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """Parse ``--map canonical=source`` options: a usage error (exit 2, SPEC §6) for a pair
    without ``=``, an unknown canonical name or a canonical column named twice, listing the
    canonical columns."""
    mapping: dict[str, str] = {}
    problems = []
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        canonical, source = canonical.strip(), source.strip()
        if not sep or not canonical or not source:
            problems.append(f"--map {pair!r}: expected canonical=source, e.g. --map user_id=customer")
        elif canonical not in CANONICAL:
            problems.append(f"--map {pair!r}: {canonical!r} is not a canonical column")
        elif canonical in mapping:
            problems.append(f"--map names {canonical!r} twice ({canonical}={mapping[canonical]} "
                            f"and {canonical}={source}); keep one")
        else:
            mapping[canonical] = source
    if problems:
        raise UsageError("; ".join(problems) + f". Canonical columns: {', '.join(CANONICAL)}",
                         {"option": "--map", "problems": problems, "valid": list(CANONICAL)})
    return mapping


@dataclass
class ColumnPlan:
    """Where each canonical column comes from in one source, and which columns are extras."""

    canonical: dict[str, str] = field(default_factory=dict)  # canonical -> source column name
    extras: list[str] = field(default_factory=list)  # source columns kept in attributes

    def source_of(self, canonical: str) -> str | None:
        return self.canonical.get(canonical)


def plan_columns(source_columns: list[str], mapping: Mapping[str, str]) -> ColumnPlan:
    """Decide, for a fixed list of source columns, which canonical columns each one feeds.

    Rules: an explicit ``--map`` wins; then the canonical name itself (any case); then a folded
    match of the canonical name or an alias (``userId``, ``X-User-ID``).
    ``--map`` copies (SPEC §3.1): the mapped column also keeps its own role, and one column may
    be named by several ``--map`` entries (``--map product=endpoint`` leaves endpoint an endpoint).
    Two columns competing for one canonical column without ``--map`` is an error naming both,
    because picking one silently could bill the wrong user.
    """
    plan = ColumnPlan()
    names = set(source_columns)
    lower_index = {c.lower(): c for c in source_columns}
    used: set[str] = set()
    # Explicit mappings first; the source column must exist.
    for canonical, source in mapping.items():
        actual = source if source in names else lower_index.get(source.lower())
        if actual is None:
            raise ValidationError(
                f"--map {canonical}={source}: the file has no column {source!r}; "
                f"its columns are: {', '.join(source_columns)}",
                {"columns": source_columns},
            )
        plan.canonical[canonical] = actual
        used.add(actual)
    exact: dict[str, list[str]] = {}
    alias: dict[str, list[str]] = {}
    for col in source_columns:
        canonical, prio = own_role(col)
        if canonical is not None:
            (exact if prio == 1 else alias).setdefault(canonical, []).append(col)
    for canonical in CANONICAL:
        if canonical in plan.canonical:
            continue  # named by --map: other columns no longer feed it
        candidates = exact.get(canonical) or alias.get(canonical) or []
        if len(candidates) > 1:
            raise ValidationError(
                f"columns {' and '.join(repr(c) for c in candidates)} both map to {canonical}; "
                f"choose one with --map {canonical}={candidates[0]}",
                {"columns": candidates, "canonical": canonical},
            )
        if candidates:
            plan.canonical[canonical] = candidates[0]
            used.add(candidates[0])
    # `tokens` alone means input tokens (SPEC §3.1); it is already an alias of input_tokens.
    plan.extras = [c for c in source_columns if c not in used]
    return plan


def own_role(name: str) -> tuple[str | None, int]:
    """The canonical column a source name stands for by itself: (canonical or None, priority),
    priority 1 for the canonical name in any case, 2 for a folded name or alias."""
    if name.strip().lower() in CANONICAL:
        return name.strip().lower(), 1
    f = fold(name)
    return _FOLDED_CANONICAL.get(f) or _FOLDED_ALIAS.get(f), 2


def missing_required(present: Iterable[str], owner_given: bool) -> list[str]:
    """Required canonical columns absent from a source."""
    have = set(present)
    return [c for c in REQUIRED if c not in have and not (c == "owner_id" and owner_given)]


def missing_columns_message(missing: list[str], source_columns: list[str]) -> str:
    """An error message naming each missing column with the names that would be accepted."""
    parts = [
        f"{m} (accepted names: {', '.join(accepted_names(m))}"
        + ("; or pass --owner" if m == "owner_id" else "")
        + ")"
        for m in missing
    ]
    return (
        "missing required column" + ("s" if len(missing) > 1 else "") + ": " + "; ".join(parts)
        + f". The file's columns are: {', '.join(source_columns) or '(none)'}."
        + " Use --map canonical=source to name a column."
    )


class RecordKeyResolver:
    """Per-key canonical mapping for sources whose records carry their own keys (JSON).

    The same rules as :func:`plan_columns`, decided key by key: a key named by ``--map`` feeds
    those canonical columns *and* its own role, unless ``--map`` gave that role to another key.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._explicit: dict[str, list[str]] = {}
        self._explicit_lower: dict[str, list[str]] = {}
        for canonical, source in mapping.items():
            self._explicit.setdefault(source, []).append(canonical)
            self._explicit_lower.setdefault(source.lower(), []).append(canonical)
        self._mapped_targets = set(mapping)
        self._cache: dict[str, tuple[tuple[str, int], ...]] = {}

    def resolve(self, key: str) -> tuple[tuple[str, int], ...]:
        """The (canonical, priority) pairs a key feeds: 0 explicit, 1 exact name, 2 alias."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        explicit = self._explicit.get(key) or self._explicit_lower.get(key.lower()) or []
        targets = [(c, 0) for c in explicit]
        canonical, prio = own_role(key)
        # A --map for this canonical column means other keys no longer feed it.
        if canonical is not None and canonical not in self._mapped_targets:
            targets.append((canonical, prio))
        result = tuple(targets)
        self._cache[key] = result
        return result
