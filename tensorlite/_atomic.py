"""Atomic file writes, shared by everything that writes a file (videos, the flow cache,
checkpoints): a reader sees the old file or the new one, never half of one.

    with atomic_write('run/ckpt.npz') as tmp:      # tmp: a fresh name in the same directory
        np.savez(tmp, ...)                         # write it completely
    # here tmp was flushed to disk and renamed over run/ckpt.npz (os.replace: atomic on one
    # filesystem); had the block raised, tmp would be gone and run/ckpt.npz untouched

A process killed inside the block leaves a hidden temporary file beside the target,
'.ckpt.npz.<pid>.<random><suffix>', never a damaged target.  The pid in the name lets the next
write to the same path remove the leftovers of writers that are no longer running (and spare a
live writer's file).
"""
import contextlib
import hashlib
import os
import re
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix='.tmp'):
    """Yield a temporary path beside `path` ending in `suffix` (a writer that picks its format
    from the extension can be given one); on success fsync it, os.replace it onto `path`, fsync
    the directory (so the rename survives a power cut) and remove dead writers' leftovers; on an
    exception remove it and re-raise."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{_temp_stem(base)}.{os.getpid()}.', suffix=suffix,
                               dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())    # mkstemp makes 0600; give what open() would have given
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync(directory)
    remove_dead_leftovers(directory, base, suffix)


def _umask():
    mask = os.umask(0)                  # the only way to read it is to set it: set it back at once
    os.umask(mask)
    return mask


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:                          # Windows cannot open a directory: nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_stem(base):
    """The target's name as it appears in its temporary files' names: the name itself, or for a
    long one (a file name may have 255 bytes, and the temporary name adds ~25) its first 100
    characters and a hash of the whole."""
    if len(base.encode('utf-8')) <= 180:
        return base
    digest = hashlib.sha1(base.encode('utf-8', 'surrogateescape')).hexdigest()[:12]
    return f"{base[:100]}~{digest}"


def remove_dead_leftovers(directory, base, suffix='.tmp'):
    """Remove the temporary files of earlier writes to `base` whose process is gone."""
    pattern = re.compile(re.escape(f'.{_temp_stem(base)}.') + r'(\d+)\.[^.]+' + re.escape(suffix)
                         + '$')
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, entry))


def _process_alive(pid):
    if pid == os.getpid():
        return True                          # another write of ours in progress (a thread)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                          # exists but not ours (EPERM), or no way to tell
        return True
    return True
