"""Writing output files so that a reader never sees half of one (SPEC §6 export, RELIABILITY.md).

``COPY … TO`` overwrites in place and a kill mid-write leaves a partial file; here every regular
file is written to a temp file in the same folder, fsynced, and renamed over the target. What is
not a regular file — a FIFO, ``/dev/stdout``, a terminal — is written straight into instead, so
that renaming never replaces it (docs/cli.md "Output files").
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from usagectl.errors import IOFailure


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; exports are for others to read
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_file(path: Path, data: bytes, *, through_links: bool = True) -> None:
    """Write an output file the user named, whatever is at ``path`` (docs/cli.md "Output files").

    * nothing, or a regular file: :func:`atomic_write` (temp file beside it, fsync, rename);
    * a FIFO, a character device or a socket (``--out /dev/stdout``, a named pipe): written
      straight into it — opened for writing, nothing created, truncated or renamed;
    * a symbolic link: to a regular file (or to nothing yet), that file is replaced atomically
      with the temp file beside it and the link is kept; to anything else, as that thing.
      With ``through_links=False`` (an export folder) a link is refused and left alone;
    * a folder: refused.

    Every failure is an OSError whose ``strerror`` says why (ENOSPC, a link refused, …).
    """
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        atomic_write(path, data)
        return
    if stat.S_ISLNK(here.st_mode):
        if not through_links:
            raise OSError(errno.ELOOP, f"it is a symbolic link (to {os.readlink(path)}); usagectl "
                                       "does not write through links here and left it as it is")
        try:
            target = os.stat(path)  # the kernel follows the link (also /proc/self/fd/1)
        except FileNotFoundError:
            atomic_write(Path(os.path.realpath(path)), data)  # a link to a file not made yet
            return
        if stat.S_ISREG(target.st_mode):
            real = Path(os.path.realpath(path))
            if not _same_file(real, target):
                raise OSError(errno.EINVAL, "cannot find the file the link points to")
            atomic_write(real, data)
            return
        here = target
    if stat.S_ISDIR(here.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder")
    if stat.S_ISREG(here.st_mode):
        atomic_write(path, data)
    else:
        _write_into(path, data, through_links)


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        mine = os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def _write_into(path: Path, data: bytes, through_links: bool) -> None:
    """Write into a FIFO or a device as it is: no temp file, no rename, no truncation."""
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (0 if through_links else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by a file since it was looked at
            raise OSError(errno.EAGAIN, "it changed while being written; try again")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# -- file names from data and a folder lock (docs/cli.md "export") -----------------------------

#: Characters a file name made from data may keep; anything else becomes '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 100


def safe_stem(text: str, used: set[str]) -> str:
    """A file name stem from data (a contract id) that cannot leave its folder.

    Keeps letters, digits, '.', '_' and '-'; other runs become '_'; no leading '.', '_' or '-';
    at most 100 characters. A stem that had to change, or that matches one already ``used``
    (compared case-insensitively, as some file systems do), gets '-' and 8 hex digits of the
    text's SHA-256, so two ids never share a file.
    """
    stem = _UNSAFE.sub("_", text).lstrip("._-")[:MAX_STEM] or "unnamed"
    if stem != text or stem.casefold() in used:
        stem = f"{stem}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"
    while stem.casefold() in used:  # only if an id already looks like another's sanitised form
        stem = f"{stem}-{hashlib.sha256(stem.encode('utf-8')).hexdigest()[:8]}"
    used.add(stem.casefold())
    return stem


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, checked to stay directly inside ``folder`` after resolving."""
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{name!r} would leave {folder}")
    return path


LOCK_NAME = ".usagectl-export.lock"


@contextmanager
def folder_lock(folder: Path, wait: float) -> Iterator[None]:
    """Hold ``folder/.usagectl-export.lock`` (flock) for a whole run; the file goes at the end.

    A second run waits up to ``wait`` seconds, then gives up with an ``io_error``. The lock is
    taken on the file that is in place: a run that finds the file replaced or removed by the
    previous holder (which deletes it while still holding it) opens it again.
    """
    path = folder / LOCK_NAME
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IOFailure(f"cannot write to {folder}: {exc.strerror}", {"path": str(folder)}) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            if time.monotonic() >= deadline:
                who = f" (process {holder})" if holder.isdigit() else ""
                raise IOFailure(
                    f"another export{who} is writing to {folder} and holds {path}; gave up after "
                    f"{wait:g} s. Wait for it to finish, or give it longer with --wait SECONDS",
                    {"path": str(folder), "lock": str(path)}) from None
            time.sleep(0.1)
            continue
        try:
            here = os.stat(path)
            mine = os.fstat(fd)
            same = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass  # the PID is only a courtesy for a waiting run's message (a full disk refuses it)
        yield
    finally:
        try:
            os.unlink(path)  # still holding it: a waiting run then reopens a fresh file
        except OSError:
            pass
        os.close(fd)
