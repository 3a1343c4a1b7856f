"""Deterministic sample usage logs and contracts for the demo and the tests (SPEC §1).

The generator lives in :mod:`usagectl.sample.generator` (also ``python -m`` runnable); it is
imported lazily here so that ``python -m usagectl.sample.generator`` does not import it twice.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SEED = 20260101


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the sample data set into ``out_dir`` (``usagectl.sample.generator.generate``)."""
    from usagectl.sample.generator import generate as _generate

    return _generate(out_dir, seed)


__all__ = ["DEFAULT_SEED", "generate"]
