"""tensorlite._atomic.atomic_write: the new file appears whole or not at all."""
import os

import pytest

from tensorlite._atomic import atomic_write


def test_success_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with atomic_write(str(target), suffix='.bin') as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith('.bin')
        assert target.read_bytes() == b'old'                  # untouched while writing
        with open(tmp, 'wb') as f:
            f.write(b'new')
    assert target.read_bytes() == b'new'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.bin']


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='disk full'):
        with atomic_write(str(target)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise RuntimeError('disk full')
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.bin']


def test_next_write_removes_dead_writers_leftovers_only(tmp_path):
    target = tmp_path / 'out.bin'
    dead = tmp_path / '.out.bin.999999999.abcdefgh.tmp'         # no such process
    live = tmp_path / f'.out.bin.{os.getpid()}.abcdefgh.tmp'    # this process: a write under way
    other = tmp_path / '.other.bin.999999999.abcdefgh.tmp'      # another target's
    for p in (dead, live, other):
        p.write_bytes(b'x')
    with atomic_write(str(target)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'new')
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(['out.bin', live.name, other.name])



def test_written_file_gets_the_umask_permissions_not_mkstemps_0600(tmp_path):
    import stat
    old = os.umask(0o022)
    try:
        target = tmp_path / 'out.bin'
        with atomic_write(str(target)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'x')
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    finally:
        os.umask(old)
