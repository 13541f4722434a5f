"""Hostile and unlucky video input (issue 17): a corpus of bad files generated here, truncated
downloads, decompression bombs, ffmpeg processes that hang, and the processes left behind.

Every bad file must give VideoReadError naming it, quickly, with nothing allocated for frames it
refuses, and `skip_bad` must carry a dataset past all of them."""
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tensorlite.data import io
from tensorlite.data.datasets import VideoFolder
from tensorlite.data.io import VideoReadError, read_video, video_info, write_video
from tensorlite.data.samplers import MultiClip, RandomTemporalCrop, using_generator


def noise(t, h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def faststart_mp4(path, frames, fps=25):
    """An MP4 with its index (moov) before the data, as streaming sites serve them: cut short, it
    still opens, and its index promises packets that are not in the file."""
    plain = write_video(str(path) + '.plain.mp4', frames, fps=fps)
    subprocess.run([io._ffmpeg_exe(), '-y', '-v', 'error', '-i', plain, '-c', 'copy',
                    '-movflags', '+faststart', str(path)], check=True, timeout=60)
    os.remove(plain)
    return path


def cut(path, fraction, to=None):
    data = open(path, 'rb').read()
    to = to or path
    with open(to, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return to


def png_bomb(path, width, height):
    """A valid 1-bit PNG of width x height, all black: a few kilobytes that decode to
    width * height * 3 bytes of RGB."""
    row = b'\x00' * (1 + (width + 7) // 8)             # filter byte + packed bits
    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n'
                + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(row * height, 9)) + chunk(b'IEND', b''))
    return path


def gif_bomb(path, width, height):
    """A one-pixel GIF whose logical screen claims width x height (the canvas Pillow composites on)."""
    Image.new('P', (1, 1)).save(path)
    data = bytearray(open(path, 'rb').read())
    data[6:10] = struct.pack('<HH', width, height)
    open(path, 'wb').write(bytes(data))
    return path


LATE = 'a frame folder whose second frame is a PNG bomb'


def hostile_corpus(folder):
    """{name: (path, what the error must say)}: every file here must be refused with VideoReadError,
    by video_info already except the frame folder whose second frame is the bomb (`LATE`)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = {}

    def add(name, path, says):
        corpus[name] = (str(path), says)

    (folder / 'empty.mp4').write_bytes(b'')
    add('empty file', folder / 'empty.mp4', 'empty.mp4')
    (folder / 'html.mp4').write_text('<html>404 Not Found</html>')
    add('a failed download', folder / 'html.mp4', 'html.mp4')
    (folder / 'random.mkv').write_bytes(np.random.default_rng(1).bytes(50_000))
    add('random bytes', folder / 'random.mkv', 'random.mkv')
    whole = write_video(folder / 'whole.mp4', noise(30), fps=25)
    add('an mp4 cut at 60 % (index at the end)', cut(whole, 0.6, folder / 'cut60.mp4'), 'cut60.mp4')
    fast = faststart_mp4(folder / 'fast.mp4', noise(50))
    add('a faststart mp4 cut at 50 %', cut(fast, 0.5, folder / 'fast50.mp4'), 'truncated')
    mkv = write_video(folder / 'whole.mkv', noise(50), fps=25)
    add('an mkv cut at 50 %', cut(mkv, 0.5, folder / 'cut50.mkv'), 'truncated')
    png_bomb(folder / 'bomb.png', 16000, 16000)
    subprocess.run([io._ffmpeg_exe(), '-y', '-v', 'error', '-f', 'image2', '-c:v', 'png', '-i',
                    str(folder / 'bomb.png'), '-c', 'copy', str(folder / 'bomb.mkv')], check=True,
                   timeout=60)
    add('a 16000x16000 frame in an mkv', folder / 'bomb.mkv', 'MAX_FRAME_PIXELS')
    add('a 16000x16000 GIF canvas', gif_bomb(folder / 'bomb.gif', 16000, 16000), 'bomb.gif')
    add('a 12000x12000 GIF canvas (Pillow only warns)', gif_bomb(folder / 'bomb12.gif', 12000, 12000),
        'MAX_FRAME_PIXELS')
    (folder / 'frames_bomb').mkdir()
    os.replace(folder / 'bomb.png', folder / 'frames_bomb' / '000000.png')
    add('a frame folder whose frame is a PNG bomb', folder / 'frames_bomb', 'MAX_FRAME_PIXELS')
    (folder / 'frames_late_bomb').mkdir()
    Image.new('RGB', (8, 8)).save(folder / 'frames_late_bomb' / '000000.png')
    png_bomb(folder / 'frames_late_bomb' / '000001.png', 9000, 9000)
    add(LATE, folder / 'frames_late_bomb', 'MAX_FRAME_PIXELS')
    (folder / 'frames_empty').mkdir()
    add('an empty frame folder', folder / 'frames_empty', 'no .jpg')
    (folder / 'not_a_gif.gif').write_bytes(b'GIF89a' + b'\x00' * 20)
    add('a broken GIF', folder / 'not_a_gif.gif', 'not_a_gif.gif')
    subprocess.run([io._ffmpeg_exe(), '-y', '-v', 'error', '-f', 'lavfi', '-i',
                    'anullsrc=r=8000:cl=mono', '-t', '0.5', str(folder / 'audio_only.mkv')],
                   check=True, timeout=60)
    add('a file with sound and no video', folder / 'audio_only.mkv', 'no video stream')
    if hasattr(os, 'mkfifo'):
        os.mkfifo(folder / 'fifo.mp4')
        add('a FIFO named x.mp4', folder / 'fifo.mp4', 'not a regular file')
    return corpus


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return hostile_corpus(tmp_path_factory.mktemp('hostile'))


def test_every_hostile_file_is_refused_quickly_naming_it(corpus):
    """video_info, read_video of frame 0 and of every frame."""
    assert len(corpus) >= 15
    for name, (path, says) in corpus.items():
        started = time.monotonic()
        reads = [video_info, lambda p: read_video(p, frames=[0]), read_video]
        if name == LATE:
            assert video_info(path).num_frames == 2 and read_video(path, frames=[0])[0].shape == (1, 8, 8, 3)
            reads = [read_video, lambda p: read_video(p, frames=[1])]
        for read in reads:
            with pytest.raises(VideoReadError) as caught:
                read(path)
            message = str(caught.value)
            assert os.path.basename(path) in message and says in message, (name, message)
        assert time.monotonic() - started < 10, name
    assert not io._RUNNING


def test_a_large_frame_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    """The budget is checked against the header: a small video over a lowered budget is refused,
    and within it reads."""
    path = write_video(tmp_path / 'v.mp4', noise(4, 32, 48), fps=10)
    monkeypatch.setattr(io, 'MAX_FRAME_PIXELS', 32 * 48 - 1)
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(io.np, 'empty', lambda *a, **k: allocated.append(a) or real_empty(*a, **k))
    with pytest.raises(VideoReadError, match=r"v\.mp4.*48x32 \(1,536 pixels"):
        read_video(path)
    assert allocated == []
    monkeypatch.setattr(io, 'MAX_FRAME_PIXELS', 32 * 48)
    assert read_video(path)[0].shape == (4, 32, 48, 3)


@pytest.mark.parametrize('ext', ['.mp4', '.mov', '.mkv', '.webm', '.avi'])
def test_a_cut_file_counts_exactly_the_frames_that_decode(tmp_path, ext):
    """Cut at 80-99.9 % of its bytes, a file is either refused or its num_frames is exactly what
    read_video returns. Before, a faststart MP4 cut at 95 % counted 95 frames and decoded 94."""
    frames = noise(60)
    whole = (faststart_mp4(tmp_path / f'v{ext}', frames) if ext in ('.mp4', '.mov')
             else write_video(tmp_path / f'v{ext}', frames, fps=25))
    readable = 0
    for fraction in np.linspace(0.8, 0.999, 12):
        path = cut(whole, fraction, tmp_path / f'cut{ext}')
        try:
            n = video_info(path).num_frames
        except VideoReadError:
            continue
        assert len(read_video(path)[0]) == n, (ext, fraction)
        readable += 1
    assert readable >= 2


def test_samplers_never_fail_on_a_faststart_mp4_cut_at_95_percent(tmp_path):
    """Before: RandomTemporalCrop failed in 14 of 2,000 draws and MultiClip always failed."""
    root = tmp_path / 'data'
    (root / 'a').mkdir(parents=True)
    whole = faststart_mp4(tmp_path / 'whole.mp4', noise(100, 16, 16))
    cut(whole, 0.95, root / 'a' / 'cut.mp4')
    n = video_info(root / 'a' / 'cut.mp4').num_frames
    assert 80 < n < 100
    crops = VideoFolder(root, sampler=RandomTemporalCrop(16, stride=2))
    with using_generator(np.random.default_rng(0)):
        for _ in range(60):                # start frames drawn over the whole range
            clip, _ = crops[0]
            assert clip.shape == (16, 16, 16, 3)
    clips, _ = VideoFolder(root, sampler=MultiClip(4, 16, stride=2))[0]
    assert len(clips) == 4 and all(c.shape == (16, 16, 16, 3) for c in clips)
    # the last frame that decodes is reachable
    last, _ = read_video(root / 'a' / 'cut.mp4', frames=[n - 1])
    assert last.shape == (1, 16, 16, 3)


def test_skip_bad_carries_a_dataset_past_the_whole_corpus(tmp_path):
    root = tmp_path / 'data'
    hostile_corpus(root / 'bad')
    (root / 'good').mkdir()
    write_video(root / 'good' / 'ok.gif', noise(4), fps=10)
    # the corpus files in the class 'bad' stand beside one readable video of that class
    write_video(root / 'bad' / 'zz_ok.gif', noise(4, seed=3), fps=10)
    for extra in ('whole.mp4', 'whole.mkv', 'fast.mp4'):
        os.remove(root / 'bad' / extra)
    dataset = VideoFolder(root, skip_bad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        labels = [dataset[i][1] for i in range(len(dataset))]
    assert labels == dataset.targets                   # substitutes come from the same class
    listed = {p for p, _ in dataset.samples if os.path.basename(p) != 'zz_ok.gif'
              and os.path.basename(os.path.dirname(p)) == 'bad'}
    assert set(dataset.bad_files) == listed and dataset.num_bad == len(listed) >= 13
    assert len(caught) == len(listed)                  # one warning per file
    assert not io._RUNNING


# ---- ffmpeg that hangs, and ffmpeg left behind ---------------------------------------------------

def _fake_ffmpeg(tmp_path, hang_on):
    """A stand-in for ffmpeg that runs the real one, except for the passes whose arguments contain
    `hang_on`, where it sleeps (as an ffmpeg blocked on a dead network share would)."""
    script = tmp_path / 'ffmpeg'
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in *"{hang_on}"*) exec sleep 600;; esac
        exec {io._ffmpeg_exe()} "$@"
        """))
    script.chmod(0o755)
    return str(script)


def _alive(pid):
    """True when pid runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, ProcessLookupError):      # gone before or while we read
        return False


def _wait_gone(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _recording_starts(monkeypatch):
    started = []
    real = io._start_ffmpeg
    monkeypatch.setattr(io, '_start_ffmpeg', lambda *a, **k: started.append(real(*a, **k)) or started[-1])
    return started


posix_only = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='needs /proc and sh')


@posix_only
def test_a_hanging_probe_is_killed_after_its_timeout(tmp_path, monkeypatch):
    path = write_video(tmp_path / 'v.mp4', noise(4), fps=10)
    fake = _fake_ffmpeg(tmp_path, '-c copy')
    monkeypatch.setattr(io, '_ffmpeg_exe', lambda: fake)
    monkeypatch.setattr(io, 'PROBE_TIMEOUT', 1)
    started = _recording_starts(monkeypatch)
    t = time.monotonic()
    with pytest.raises(VideoReadError, match=r"v\.mp4.*more than 1 s.*killed"):
        video_info(path)
    assert time.monotonic() - t < 5
    assert started and not _alive(started[0].pid) and not io._RUNNING


@posix_only
def test_a_stalled_decoder_is_killed(tmp_path, monkeypatch):
    path = write_video(tmp_path / 'v.mp4', noise(4), fps=10)
    fake = _fake_ffmpeg(tmp_path, 'rawvideo')
    monkeypatch.setattr(io, '_ffmpeg_exe', lambda: fake)
    monkeypatch.setattr(io, 'DECODE_STALL_TIMEOUT', 1)
    started = _recording_starts(monkeypatch)
    t = time.monotonic()
    with pytest.raises(VideoReadError, match=r"v\.mp4.*delivered nothing for 1 s"):
        read_video(path)
    assert time.monotonic() - t < 5
    assert started and not _alive(started[-1].pid) and not io._RUNNING


_CHILD = """
import sys, threading, time
from tensorlite.data import io
io._ffmpeg_exe = lambda: {exe!r}
frames = io._ffmpeg_frames({path!r}, 320, 240)
{how}
print(next(iter(io._RUNNING)).pid, flush=True)
{then}
"""


@posix_only
@pytest.mark.parametrize('case', ['exit with a stalled decoder', 'kill -9 while decoding'])
def test_no_ffmpeg_outlives_the_python_that_started_it(tmp_path, case):
    """Normal exit with a decoder blocked (it would never write again, so never meet SIGPIPE):
    the atexit hook kills it. kill -9 of Python while ffmpeg streams a long video: ffmpeg dies of
    SIGPIPE at its next write."""
    path = write_video(tmp_path / 'long.mp4', noise(300, 240, 320), fps=25)
    if case.startswith('exit'):
        exe = _fake_ffmpeg(tmp_path, 'rawvideo')
        how = ("threading.Thread(target=lambda: next(frames), daemon=True).start()\n"
               "while not io._RUNNING: time.sleep(0.01)")
        then = "sys.stdin.readline(); sys.exit(0)"      # exits when the test says so
    else:
        exe = io._ffmpeg_exe()
        how = "next(frames)"
        then = "time.sleep(600)"
    script = _CHILD.format(exe=exe, path=str(path), how=how, then=then)
    child = subprocess.Popen([sys.executable, '-c', script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        pid = int(child.stdout.readline())
        assert _alive(pid)
        if case.startswith('exit'):
            child.stdin.write('\n')
            child.stdin.flush()
        else:
            time.sleep(0.3)
            assert _alive(pid)                 # blocked on the full pipe, not finished
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert _wait_gone(pid), f"ffmpeg {pid} outlived its parent ({case})"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()


def _class_root(tmp_path):
    """Classes a (2 good, 2 bad), b (3 good), c (1 good, 1 bad); frame 0 of good video k of a
    class is coded by its class and k, so the tests can see which video stood in."""
    root = tmp_path / 'data'
    layout = {'a': ['g', 'x', 'g', 'x'], 'b': ['g', 'g', 'g'], 'c': ['x', 'g']}
    for c, kinds in layout.items():
        (root / c).mkdir(parents=True)
        for k, kind in enumerate(kinds):
            if kind == 'g':
                frames = np.full((3, 8, 8, 3), 10 * 'abc'.index(c) + k, np.uint8)
                write_video(root / c / f'{k}.gif', frames, fps=10)
            else:
                (root / c / f'{k}.mp4').write_text('<html>404</html>')
    return root


def test_skip_bad_with_workers_reports_in_the_main_process_once_per_file(tmp_path, capfd):
    from tensorlite.data import DataLoader
    dataset = VideoFolder(_class_root(tmp_path), skip_bad=True)
    loader = DataLoader(dataset, batch_size=2, shuffle=True, seed=0, num_workers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for epoch in range(2):
            labels = []
            for clips, targets in loader:
                labels += targets.numpy().tolist()
                for clip, label in zip(clips.numpy(), targets.numpy()):
                    assert clip[0, 0, 0, 0] // 10 == label      # a video of the same class
            assert sorted(labels) == sorted(dataset.targets)
    assert dataset.num_bad == 3                               # counted in the main process
    assert sorted(os.path.basename(p) for p in dataset.bad_files) == ['0.mp4', '1.mp4', '3.mp4']
    messages = [str(w.message) for w in caught if 'unreadable' in str(w.message)]
    assert len(messages) == 3 and len({m.split("'")[1] for m in messages}) == 3
    assert 'unreadable' not in capfd.readouterr().err         # the workers said nothing


def test_a_subset_takes_substitutes_from_itself(tmp_path):
    dataset = VideoFolder(_class_root(tmp_path), skip_bad=True)
    # class a is items 0-3 (good, bad, good, bad); keep 0, 1 and 3 only
    part = dataset.subset([0, 1, 3, 4])
    assert len(part) == 4 and part.targets == [0, 0, 0, 1]
    with pytest.warns(UserWarning) as record:
        clip, label = part[1]                 # items 1 and 2 are bad: item 0 stands in
    assert len(record) == 2
    assert label == 0 and clip[0, 0, 0, 0] == 0               # video 0, not video 2
    assert part[2][0][0, 0, 0, 0] == 0
    assert part.num_bad == 2 and dataset.num_bad == 0
    only_bad = dataset.subset([1, 3])
    with pytest.warns(UserWarning), pytest.raises(VideoReadError, match="all 2 videos of class 'a'"):
        only_bad[0]
