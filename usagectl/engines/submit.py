"""The file ``spark-submit`` runs: usagectl's command line, in the driver spark-submit starts.

    spark-submit --master yarn --archives env.tar.gz#environment \\
        --conf spark.pyspark.python=./environment/bin/python \\
        "$(python -c 'import usagectl.engines.submit as m; print(m.__file__)')" \\
        report --contract acme-farms-2026 --engine spark --events s3a://bucket/usage-events \\
        --contracts contracts.toml --format json

spark-submit needs a ``.py`` file (``python -m usagectl`` is not one). The arguments after it are
``usagectl``'s. With no ``--spark-master``, ``--engine spark`` keeps the master and settings
spark-submit was given (:func:`usagectl.engines.spark.launched_by_spark`). docs/spark.md
"Running on a cluster".
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    # Python puts this file's folder first on sys.path: usagectl/engines' modules (spark.py, …)
    # must not be importable as top-level names.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != here]
    from usagectl.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
