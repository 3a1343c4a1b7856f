"""The JSON record batcher's ``add`` before issue 11 (key resolution redone for every record),
kept verbatim as a reference for tests/test_ingest_json_plans.py. Not used by the product."""

from __future__ import annotations

import json
from typing import Any

from usagectl.sources.columns import CANONICAL
from usagectl.sources.readers import _json_default, _json_value, _RecordBatcher


class ReferenceBatcher(_RecordBatcher):
    def add(self, line: int, record: dict | None, raw: str, reason: str | None = None) -> None:
        self.source.stats.records += 1
        self.lines.append(line)
        row: dict[str, Any] = {}
        prio: dict[str, tuple[int, str]] = {}
        extras: dict[str, Any] = {}
        if record is not None and reason is None:
            fed: list[tuple[str, Any]] = []  # keys that feed at least one canonical column
            for key, value in record.items():
                targets = self.resolver.resolve(key)
                if not targets:
                    extras[key] = value
                    continue
                fed.append((key, value))
                for canonical, p in targets:
                    if canonical in prio:
                        old_p, old_key = prio[canonical]
                        if p == old_p:
                            reason = (f"keys {old_key!r} and {key!r} both map to {canonical}; "
                                      f"choose one with --map {canonical}={old_key}")
                            break
                        if p > old_p:
                            continue
                    prio[canonical] = (p, key)
                    row[canonical] = (key, value)
                if reason is not None:
                    break
            # A key that lost every canonical column it could feed is kept as an extra.
            winners = {key for _, key in prio.values()}
            for key, value in fed:
                if key not in winners:
                    extras[key] = value
        for c in CANONICAL:
            if reason is None and c in row:
                self.source.stats.seen_canonical.add(c)
                self.cols[c].append(_json_value(row[c][1]))
            else:
                self.cols[c].append(None)
        self.attrs.append(json.dumps(extras, default=_json_default, ensure_ascii=False,
                                     separators=(",", ":")) if extras and reason is None else None)
        self.pre.append(reason)
        self.raw.append(raw)

