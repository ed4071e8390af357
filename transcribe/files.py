"""Writing files safely: outputs appear complete or not at all, even across power loss.

:func:`atomic_write` writes under a temporary name in the same folder,
``.NAME.<host>.<pid>.<random>.part``, fsyncs the file, renames it into place and fsyncs the
folder. The temporary file is created with the mode the umask gives new files (as ``open``
does), so outputs are as readable as any other file the user writes. The owner's host and
process id in the name let :func:`remove_stale_parts` delete the leftovers of a killed run
without ever touching a temporary file that a live process (another run on the same folder)
is still writing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

PART_SUFFIX = ".part"
STALE_FOREIGN_SECONDS = 3600.0  # a temporary file of another host this old is abandoned


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def part_name(path: Path) -> str:
    """The temporary name for ``path`` owned by this process."""
    return f".{path.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"


def part_owner(part: str, name: str) -> tuple[str, int] | None:
    """``(host, pid)`` if ``part`` is a temporary file of the output named ``name``, else None."""
    prefix = f".{name}."
    if not (part.startswith(prefix) and part.endswith(PART_SUFFIX)):
        return None
    fields = part[len(prefix): -len(PART_SUFFIX)].split(".")
    if len(fields) != 3 or not fields[1].isdigit():
        return None
    return fields[0], int(fields[1])


def pid_alive(pid: int) -> bool | None:
    """Whether a process with this id exists on this machine; None where that cannot be asked
    safely (Windows, where ``os.kill(pid, 0)`` would terminate the process)."""
    if os.name == "nt":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(outputs: list[Path]) -> list[Path]:
    """Delete temporary files that killed runs left beside ``outputs``: those whose owner
    process (on this host) is dead, and those of other hosts untouched for an hour. Names are
    compared as strings (no glob), so ``[`` or ``*`` in a name matches nothing else."""
    removed = []
    for out in outputs:
        try:
            names = os.listdir(out.parent)
        except OSError:
            continue
        for name in names:
            owner = part_owner(name, out.name)
            if owner is None:
                continue
            part, stale = out.parent / name, False
            alive = pid_alive(owner[1]) if owner[0] == _host() else None
            if owner[0] == _host() and alive is not None:
                stale = owner[1] != os.getpid() and not alive
            else:  # another host's, or liveness unknown (Windows): abandoned once untouched for an hour
                with contextlib.suppress(OSError):
                    stale = time.time() - part.stat().st_mtime > STALE_FOREIGN_SECONDS
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                    removed.append(part)
    return removed


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or creation in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success fsync it, rename it to ``path``
    and fsync the folder. On any exception (Ctrl-C included) the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / part_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode: 0666 & ~umask
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


LOCK_SUFFIX = ".lock"


class Claim:
    """An exclusive claim on an output, held by this process: a lock (``filelock``: ``flock`` on
    Unix, ``msvcrt`` on Windows) on ``.NAME.lock`` beside it, so that two runs writing into the
    same folder never work on the same output at once. The lock file is removed on release (while
    still locked: a waiter that then gets the lock sees its file gone and tries again, see
    :func:`try_claim`); the system drops the lock when the process dies, whatever kills it, so a
    claim never outlives its owner."""

    def __init__(self, path: Path, lock, native: bool = True):
        self.path, self._lock, self._native = path, lock, native

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self._lock is not None:
            if self._native:  # a soft lock's file is the lock: filelock removes it on release
                with contextlib.suppress(OSError):  # gone, or (Windows) open: filelock removes it there
                    os.unlink(self.path)
            self._lock.release()
            self._lock = None


class _Replaced(Exception):
    """The lock was taken on a file that is no longer the lock file (its holder removed it)."""


def lock_path(output: Path) -> Path:
    """The lock file of ``output``."""
    return output.parent / f".{output.name}{LOCK_SUFFIX}"


def clear_dead_claim(output: Path) -> None:
    """Remove ``output``'s lock file if no live process holds it: the leftover of a run killed
    between writing the output and releasing its claim (kill -9)."""
    if lock_path(output).exists():
        claim = try_claim(output)
        if claim is not None:
            claim.release()


def try_claim(output: Path, wait: bool = False) -> Claim | None:
    """Claim ``output`` (see :class:`Claim`); None if another process holds it and ``wait``
    is false. Creates the output's folder."""
    from filelock import FileLock, SoftFileLock, Timeout

    # Without flock (fcntl) or msvcrt, filelock's FileLock is its SoftFileLock (the lock file is the
    # lock; a dead owner's is recovered by filelock): no descriptor to check, nothing to remove ourselves.
    native = not issubclass(FileLock, SoftFileLock)
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)

    def still_the_lock_file(fd: int) -> None:  # the holder before us may have removed it: then lock the new one
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise _Replaced

    while True:
        lock = FileLock(path, timeout=-1 if wait else 0, **({"on_acquired": still_the_lock_file} if native else {}))
        try:
            lock.acquire()
        except Timeout:
            return None
        except _Replaced:  # filelock rolled the acquisition back
            continue
        return Claim(path, lock, native)
