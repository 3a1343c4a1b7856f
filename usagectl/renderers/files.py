"""Writing output files so that a reader never sees half of one (SPEC §6 export, RELIABILITY.md).

``COPY … TO`` overwrites in place and a kill mid-write leaves a partial file; here every regular
file is written to a temp file in the same folder, fsynced, and renamed over the target. What is
not a regular file — a FIFO, ``/dev/stdout``, a terminal — is written straight into instead, so
that renaming never replaces it (docs/cli.md "Output files").

The data is bytes, or an iterable of bytes written piece by piece as it comes (a streamed log):
if taking a piece fails, the temp file is removed and the target is left as it was.
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from usagectl.errors import IOFailure


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pieces(data: bytes | Iterable[bytes]) -> Iterable[bytes]:
    return (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file.

    ``data`` may be an iterable of bytes: an error while taking a piece removes the temp file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; exports are for others to read
        with os.fdopen(fd, "wb") as f:
            for piece in _pieces(data):
                f.write(piece)
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


def write_file(path: Path, data: bytes | Iterable[bytes], *, through_links: bool = True) -> None:
    """Write an output file the user named, whatever is at ``path`` (docs/cli.md "Output files").

    * nothing, or a regular file: :func:`atomic_write` (temp file beside it, fsync, rename);
    * a FIFO, a character device or a socket (``--out /dev/stdout``, a named pipe): written
      straight into it — opened for writing, nothing created, truncated or renamed;
    * a symbolic link: to a regular file (or to nothing yet), that file is replaced atomically
      with the temp file beside it and the link is kept; to anything else, as that thing.
      With ``through_links=False`` (an export folder) a link is refused and left alone;
    * a folder: refused.

    Every failure to write is an OSError whose ``strerror`` says why (ENOSPC, a link refused,
    …); an error raised while taking a piece of ``data`` propagates as it is.
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


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True when two stat results are of the same file (device and inode)."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        return same_file(os.stat(path), st)
    except OSError:
        return False


def _write_into(path: Path, data: bytes | Iterable[bytes], through_links: bool) -> None:
    """Write into a FIFO or a device as it is: no temp file, no rename, no truncation (a
    stream that fails midway leaves what was written: there is nothing to roll back)."""
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (0 if through_links else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by a file since it was looked at
            raise OSError(errno.EAGAIN, "it changed while being written; try again")
        for piece in _pieces(data):
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# -- file names from data and a folder lock (docs/cli.md "export") -----------------------------

#: Characters a file name made from data may keep; anything else becomes '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 100
#: A name that is safe as it is: letters, digits, '.', '_' and '-', starting with a letter or a
#: digit, at most 100 characters (contract ids are held to it at load, docs/contracts.md).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Device names Windows reserves in every folder, with or without an extension (``nul.txt``).
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                              *(f"LPT{i}" for i in range(1, 10))})


def windows_reserved(name: str) -> bool:
    """True for ``CON``, ``nul``, ``aux.txt``, ``LPT9.csv`` …: Windows opens the device instead."""
    return name.split(".", 1)[0].upper() in WINDOWS_RESERVED


def _hash8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def safe_stem(text: str, used: set[str]) -> str:
    """A file name stem from data (a contract id) that cannot leave its folder.

    The stem depends only on ``text``: ``text`` itself when it is a :data:`SAFE_NAME` and no
    Windows device name; otherwise letters, digits, '.', '_' and '-' kept, other runs made '_',
    no leading '.', '_' or '-', at most 100 characters, a reserved device name's first '.' made
    '_', then '-' and 8 hex digits of the text's SHA-256 (``a/b`` → ``a_b-…``, ``CON`` →
    ``CON-…``). Only when that equals a stem already in ``used`` (compared case-insensitively,
    as some file systems do — possible in a database loaded before ids had to differ by more
    than case) is it made longer, so two ids never share a file.
    """
    if SAFE_NAME.fullmatch(text) and not windows_reserved(text):
        stem = text
    else:
        stem = _UNSAFE.sub("_", text).lstrip("._-")[:MAX_STEM] or "unnamed"
        if windows_reserved(stem):
            stem = stem.replace(".", "_", 1)
        stem = f"{stem}-{_hash8(text)}"
    while stem.casefold() in used:
        stem = f"{stem}-{_hash8(stem)}"
    used.add(stem.casefold())
    return stem


def file_stems(ids: list[str]) -> dict[str, str]:
    """:func:`safe_stem` of every id, given in a fixed order (sorted), so that an id's stem is
    the same in every run whichever contracts the run exports."""
    used: set[str] = set()
    return {i: safe_stem(i, used) for i in sorted(set(ids))}


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, checked to be a plain name directly inside ``folder``."""
    path = folder / name
    if name in ("", ".", "..") or path.parent != folder or os.sep in name:
        raise OSError(errno.EPERM, f"{name!r} would leave {folder}")
    return path


LOCK_NAME = ".usagectl-export.lock"


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open_lock(folder: Path, path: Path) -> int:
    """Open (or create) the lock file; anything there that is not a regular file is refused."""

    def refused(kind: str) -> IOFailure:
        return IOFailure(
            f"cannot lock {folder}: {path} is {kind}, not a regular file; usagectl does not "
            "use it and left it as it is. Remove it and run the export again",
            {"path": str(folder), "lock": str(path)})

    try:
        here = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise IOFailure(f"cannot write to {folder}: {exc.strerror}", {"path": str(folder)}) from None
    else:
        if not stat.S_ISREG(here.st_mode):
            raise refused(_kind(here.st_mode))
    try:
        # O_NOFOLLOW: a link put there since the check is refused (ELOOP), never written through.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused("a symbolic link") from None
        raise IOFailure(f"cannot write to {folder}: {exc.strerror}", {"path": str(folder)}) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise refused(_kind(mode))
    return fd


def _is_open_file(path: Path, fd: int) -> bool:
    """True when ``path`` is (still) the file open as ``fd``."""
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        return False
    return same_file(here, os.fstat(fd))


@contextmanager
def folder_lock(folder: Path, wait: float) -> Iterator[None]:
    """Hold ``folder/.usagectl-export.lock`` (flock) for a whole run; the file goes at the end.

    A second run waits up to ``wait`` seconds, then gives up with an ``io_error``. The lock is
    taken on the file that is in place: a run that finds the file replaced or removed by the
    previous holder (which deletes it while still holding it) opens it again. A lock path that
    is not a regular file (a symbolic link, a FIFO …) is refused with an ``io_error`` naming it:
    the file is truncated and written, so it must never be somebody else's file.
    """
    path = folder / LOCK_NAME
    deadline = time.monotonic() + wait
    while True:
        fd = _open_lock(folder, path)
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
        if _is_open_file(path, fd):
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
            if _is_open_file(path, fd):
                os.unlink(path)  # still holding it: a waiting run then reopens a fresh file
        except OSError:
            pass
        os.close(fd)
