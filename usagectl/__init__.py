"""usagectl: recompute usage-based bills from raw event logs, exactly.

Pipeline: ``sources`` (read files) → ``store`` (DuckDB) → ``meters`` → ``reports`` → ``renderers``.
"""

__version__ = "0.1.0"
