"""Atomic file writes, shared by everything that writes a file (videos, the flow cache,
checkpoints): a reader sees the old file or the new one, never half of one.

    with atomic_write('run/ckpt.npz') as tmp:      # tmp: a fresh name in the same directory
        np.savez(tmp, ...)                         # write it completely
    # here tmp was flushed to disk and renamed over run/ckpt.npz (os.replace: atomic on one
    # filesystem); had the block raised, tmp would be gone and run/ckpt.npz untouched

A process killed inside the block leaves a hidden temporary file ('.ckpt.npz.XXXX.tmp' beside the
target), never a damaged target.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix='.tmp'):
    """Yield a temporary path beside `path` ending in `suffix` (a writer that picks its format
    from the extension can be given one); on success fsync it and os.replace it onto `path`, on an
    exception remove it and re-raise."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix,
                               dir=directory)
    os.close(fd)
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
            os.remove(tmp)
        raise
