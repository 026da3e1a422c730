"""labkit's cache: where it lives (:func:`labkit_home`), and folders in it that appear complete
or not at all, even with two kernels writing at once.

Converting the base model, saving an adapter and building an ONNX export all write a
folder that other code trusts once it exists. :func:`atomic_dir` builds such a folder
under a temporary name next to its target and moves it into place only when the build
succeeded::

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)   # write everything into tmp
    # now `out` holds the new folder; if the block raised, `out` is exactly as it was

- The old folder is moved aside, the new one renamed into place, and only then is the
  old one deleted (if the rename fails, the old folder is put back).
- A failed or interrupted build removes its temporary folder; temporary folders left by
  a killed process are removed by the next build of the same target.
- Builds of the same target are serialised by :func:`locked`, a lock file next to the
  target (``.<name>.lock``), so two processes never delete each other's work. Code that
  should build only once takes the lock itself and checks again inside it::

      with locked(out):
          if not is_complete(out):
              with atomic_dir(out) as tmp:  # the lock is re-entrant in one thread
                  ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path



def labkit_home() -> Path:
    """Where labkit keeps converted models, adapters and exports: ``$LABKIT_HOME`` or the
    user cache directory (``~/.cache/labkit`` on Linux)."""
    if os.environ.get("LABKIT_HOME"):
        return Path(os.environ["LABKIT_HOME"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("labkit"))


def lock_path(target) -> Path:
    """The lock file for ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def locked(target, timeout: float | None = None):
    """Hold an exclusive lock on ``target`` (a folder that may not exist yet) while the block
    runs. Other processes and threads that lock the same target wait; the same thread may
    lock it again inside the block. ``timeout`` (seconds) raises TimeoutError instead of
    waiting forever. The lock is a ``filelock.FileLock`` on :func:`lock_path`: thread-local and
    re-entrant, one object per lock file in this process (filelock's ``is_singleton``)."""
    from filelock import FileLock, Timeout

    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.resolve()), thread_local=True, is_singleton=True)
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except Timeout:
        raise TimeoutError(
            f"{path} is held by another process for more than {timeout:.0f} s. If no other "
            "kernel or script is building this folder, delete the lock file and try again.") from None
    try:
        yield
    finally:
        lock.release()


def _leftovers(target: Path):
    """Temporary and set-aside folders of earlier builds of ``target`` (a killed process)."""
    return [p for pattern in (f".{target.name}.partial-*", f".{target.name}.old-*")
            for p in target.parent.glob(pattern)]


def replace_dir(new, target) -> None:
    """Put the folder ``new`` at ``target``. An existing ``target`` is moved aside first and
    deleted only once ``new`` is in place; if that rename fails, it is moved back."""
    new, target = Path(new), Path(target)
    aside = None
    if target.exists() or target.is_symlink():
        aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()


@contextlib.contextmanager
def atomic_dir(target, timeout: float | None = None):
    """Build a folder that replaces ``target`` only if the ``with`` block succeeds.

    Yields an empty temporary folder next to ``target`` (same file system, so the final
    rename is one step). On success it replaces ``target`` (see :func:`replace_dir`); on
    any failure, KeyboardInterrupt included, it is deleted and ``target`` is untouched.
    The whole build holds :func:`locked` on ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target, timeout):
        for old in _leftovers(target):  # safe: nobody else builds this target while we hold the lock
            shutil.rmtree(old, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            yield tmp
            replace_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after a failure; after success it is gone already


@contextlib.contextmanager
def atomic_file(target):
    """A temporary file path next to ``target`` that replaces ``target`` in one rename only if
    the ``with`` block succeeds; after a failure it is deleted and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # after a failure; after success it is gone already
