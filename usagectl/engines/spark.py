"""A Spark session for ``--engine spark``: where it runs, its settings, and clear failures.

The session is made by :func:`spark_session` (docs/spark.md "Settings"):

* the master is ``--spark-master URL`` (default ``local[*]``), or, when no master is given and
  ``SPARK_REMOTE`` is set, that Spark Connect server (``sc://host:port``), or, when no master is
  given and ``spark-submit`` started this process (:func:`launched_by_spark`), the master and
  settings spark-submit was given, untouched (``usagectl/engines/submit.py`` is the file to
  submit);
* a local master runs offline: driver host and bind address 127.0.0.1 (``SPARK_LOCAL_IP`` too),
  its driver log at fatal errors only (``log4j2-quiet.properties``; usagectl reports
  errors itself, in one line),
  no UI, few shuffle partitions, the Python workers on this interpreter (``PYSPARK_PYTHON``);
* the session time zone is UTC, so timestamps keep their instant and local days are computed
  in the contract's zone explicitly.

What can go wrong before any figure is computed is a usagectl error (exit 1), never a traceback:
pyspark not installed (names the extra to install), no Java (names the package and
``JAVA_HOME``), a master that cannot be reached (the URL and the reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from usagectl.errors import UsagectlError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: ``--spark-master`` when none is given (and ``SPARK_REMOTE`` is not set).
DEFAULT_MASTER = "local[*]"
#: Shuffle partitions of a local session: the figures are small aggregates; Spark's default of
#: 200 tasks per shuffle costs seconds of scheduling on a 2-core machine.
LOCAL_SHUFFLE_PARTITIONS = 4
#: The extra that brings pyspark (pyproject.toml).
INSTALL_HINT = "pip install 'usagectl[spark]'"
#: Debian/Ubuntu's Java runtime for Spark 4.
JAVA_PACKAGE = "openjdk-17-jre-headless"
#: Seconds to wait for a master's port before giving up (a refused port fails at once).
CONNECT_TIMEOUT = 5.0
#: Default ports of the URL schemes whose reachability is checked before Spark starts.
_PORTS = {"spark": 7077, "sc": 15002}


class SparkUnavailable(UsagectlError):
    """Spark cannot run here: pyspark or Java missing, or the master unreachable (exit 1)."""

    code = "spark_unavailable"


def require_pyspark() -> None:
    """Import pyspark, or fail naming the extra that installs it."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise SparkUnavailable(
            f"--engine spark needs pyspark, which is not installed ({exc}). Install the spark "
            f"extra: {INSTALL_HINT}", {"install": INSTALL_HINT}) from None


def java_executable() -> str:
    """The ``java`` Spark will start (``$JAVA_HOME/bin/java``, else on PATH), or fail naming
    the package that installs it."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file() and os.access(java, os.X_OK):
            return str(java)
        raise SparkUnavailable(
            f"--engine spark needs Java 17 or newer: JAVA_HOME is {home!r} but {java} is not an "
            f"executable. Point JAVA_HOME at a Java installation, or unset it and install "
            f"{JAVA_PACKAGE} (apt-get install {JAVA_PACKAGE})",
            {"java_home": home, "package": JAVA_PACKAGE})
    found = shutil.which("java")
    if found is None:
        raise SparkUnavailable(
            f"--engine spark needs Java 17 or newer and finds no java on PATH: install "
            f"{JAVA_PACKAGE} (apt-get install {JAVA_PACKAGE}) or set JAVA_HOME to a Java "
            "installation", {"package": JAVA_PACKAGE})
    return found


def launched_by_spark(environ: Mapping[str, str] = os.environ) -> bool:
    """True when spark-submit (or the pyspark shell) started this process: its JVM is running
    with the master and settings it was given, and pyspark connects to it through the port in
    ``PYSPARK_GATEWAY_PORT``."""
    return "PYSPARK_GATEWAY_PORT" in environ


def is_local(master: str) -> bool:
    """True for ``local``, ``local[N]``, ``local[*]``, ``local[N,F]``: Spark inside this process."""
    return master == "local" or master.startswith("local[")


def check_reachable(url: str) -> None:
    """For a ``spark://`` master or an ``sc://`` Connect server: its port answers, or an error
    naming the URL and why (Spark itself would retry for a minute before giving up)."""
    parts = urlsplit(url)
    if parts.scheme not in _PORTS:
        return
    hosts = [h.strip() for h in parts.netloc.split(",") if h.strip()]  # spark://a:7077,b:7077
    if not hosts:
        raise SparkUnavailable(f"the Spark master URL {url!r} names no host", {"master": url})
    reasons = []
    for host in hosts:
        name, _, port = host.partition(":")
        port = port.split("/")[0]
        try:
            with socket.create_connection((name, int(port or _PORTS[parts.scheme])),
                                          timeout=CONNECT_TIMEOUT):
                return
        except (OSError, ValueError) as exc:
            reasons.append(f"{host}: {exc}")
    raise SparkUnavailable(f"cannot reach the Spark master {url}: {'; '.join(reasons)}",
                           {"master": url, "reason": "; ".join(reasons)})


def _quiet_python_log() -> None:
    """pyspark logs a failed query's context (JSON, with a traceback) on stderr before raising
    it; usagectl reports the error itself, in one line."""
    import logging

    from pyspark.logger import PySparkLogger

    PySparkLogger.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL + 1)


#: What the JVM itself prints on stderr as it starts (Spark 4 adds ``--add-modules
#: jdk.incubator.vector``): not an error, and no log setting reaches it.
JVM_NOISE = ("WARNING: Using incubator modules:",)


@contextlib.contextmanager
def _jvm_stderr(filtered: bool) -> Iterator[None]:
    """While the JVM starts, hand it a pipe as its stderr (it keeps it for its lifetime): a
    thread copies every line to this process's stderr except :data:`JVM_NOISE`, so that a
    ``--quiet`` run prints nothing while an error the JVM prints still shows."""
    if not filtered:
        yield
        return
    import threading

    try:
        sys.stderr.flush()
        saved, forward = os.dup(2), os.dup(2)
        read, write = os.pipe()
    except OSError:  # no stderr to redirect (a daemon, a closed descriptor)
        yield
        return

    def copy() -> None:
        with os.fdopen(read, "rb") as pipe, os.fdopen(forward, "wb", buffering=0) as err:
            for line in pipe:
                if not line.decode(errors="replace").startswith(JVM_NOISE):
                    err.write(line)

    threading.Thread(target=copy, name="usagectl-jvm-stderr", daemon=True).start()
    os.dup2(write, 2)
    os.close(write)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


@contextlib.contextmanager
def spark_session(master: str | None = None) -> Iterator[SparkSession]:
    """A Spark session for one report, stopped afterwards if this call started it.

    A session already active in this process (a notebook's, a test module's) is reused as it
    is and left running; ``master`` then does not apply.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    remote = os.environ.get("SPARK_REMOTE") if master is None else None
    submitted = master is None and not remote and launched_by_spark()
    target = remote or master or ("the master spark-submit was given" if submitted
                                  else DEFAULT_MASTER)
    builder = SparkSession.builder
    if submitted:  # spark-submit's master, Python and settings (--conf, spark-defaults) stand
        pass
    elif remote:
        check_reachable(remote)
        builder = builder.appName("usagectl").remote(remote)
    else:
        check_reachable(target)
        builder = builder.appName("usagectl")
        java_executable()
        builder = builder.master(target)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        if is_local(target):  # offline: nothing listens beyond this machine
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            quiet = Path(__file__).with_name("log4j2-quiet.properties")
            builder = (builder.config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.extraJavaOptions",
                               f"-Dlog4j2.configurationFile={quiet.as_uri()}")
                       .config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS)))
        builder = (builder.config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false"))
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    try:
        with _jvm_stderr(filtered=not remote and not submitted):
            session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 — Spark's many start-up errors, named with the URL
        raise SparkUnavailable(f"cannot start Spark on {target}: {_first_line(exc)}",
                               {"master": target, "reason": _first_line(exc)}) from None
    try:
        if not remote and not submitted:  # pyspark sets WARN once started
            session.sparkContext.setLogLevel("FATAL" if is_local(target) else "ERROR")
        _quiet_python_log()
        yield session
    finally:
        session.stop()
