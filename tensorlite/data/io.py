"""Reading and writing videos: container files through ffmpeg, GIFs through Pillow, and folders of
JPEG/PNG frames.

The lesson's first practical point is that a video holds far more frames than a model looks at, so
the reader is built around partial decoding: `read_video(path, frames=indices)` decodes only up to
the last index a sampler asked for (and, in a long constant-rate MP4/MKV/WebM, seeks to the first one), and
`video_info(path)` answers "how many frames?" without decoding any.

Three kinds of source, one interface:

- container files (.mp4 .avi .mkv .webm .mov ...): the ffmpeg binary shipped with imageio-ffmpeg,
  run as a subprocess that pipes raw RGB frames. Frames are counted by a demux-only pass
  (`-c copy`: packets are counted, nothing is decoded), which is exact where container headers
  are not (an AVI's or WebM's header may omit the count; duration * fps is off by one or more
  when the last frame's duration is rounded). When that pass reports damaged packets or a file
  cut short, the frames are counted by decoding instead, so the count is always what decodes.
  Every ffmpeg run is bounded in time and killed if Python exits first (see "Running ffmpeg").
- GIF: Pillow, which composites each frame over the previous one as a GIF viewer does.
- a folder of .jpg/.jpeg/.png frames, sorted naturally (frame_2 before frame_10). A folder stores
  no frame rate: `fps` (default `FOLDER_FPS`) says at what rate the frames were extracted.

All decoded frames are uint8 arrays of shape (T, H, W, 3), RGB whatever the source's pixel format
(grayscale, palette, RGBA, YUV). A frame size over `MAX_FRAME_PIXELS` is refused from the header,
before anything is decoded.
"""
import atexit
import os
import re
import select
import shutil
import stat
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .._atomic import atomic_write

__all__ = ['VideoReadError', 'VideoInfo', 'read_video', 'video_info', 'write_video',
           'VIDEO_EXTENSIONS', 'IMAGE_EXTENSIONS', 'FOLDER_FPS', 'MAX_FRAME_PIXELS']

#: extensions read through ffmpeg (anything ffmpeg can demux works; these are the ones a dataset
#: scan picks up by default)
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg', '.mpeg', '.flv')
#: frame files inside a frame folder
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
#: frame rate assumed for a folder of frames when the caller gives none (a folder stores no rate;
#: 30 fps is the common extraction rate of Kinetics-style dumps)
FOLDER_FPS = 30.0

#: the largest frame (width * height) a reader accepts: 8192 x 8192, four times 8K UHD. A larger
#: size in a header is refused with VideoReadError before any frame is decoded or allocated (a
#: 16000 x 16000 header in a few kilobytes, an image decompression bomb). Raise it by assigning
#: `tensorlite.data.io.MAX_FRAME_PIXELS` when you really read such videos.
MAX_FRAME_PIXELS = 8192 * 8192

# Seeking (ffmpeg -ss before -i) is used when the first requested frame is at least this many
# frames in: below it, decoding from the start costs little and cannot go wrong.
SEEK_MIN_FRAMES = 48


class VideoReadError(ValueError):
    """A file could not be read as a video: not a video, corrupt, truncated, or an empty folder.
    The message names the file and what went wrong."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video without decoding it.

    Attribute access (`info.fps`) and dict access (`info['fps']`, `dict(info)`, `info.keys()`)
    both work, so code written for torchvision's info dict reads naturally.

    fps:        frames per second (for a frame folder, the rate given or `FOLDER_FPS`)
    num_frames: number of frames `read_video` returns for this file
    duration:   seconds spanned by those frames, num_frames / fps
    width, height: frame size in pixels (after the container's rotation is applied)
    path:       the path that was read
    format:     'ffmpeg:<demuxer>' (e.g. 'ffmpeg:mov,mp4,m4a,3gp,3g2,mj2'), 'gif' or 'folder'
    codec:      the video codec ('h264', 'gif', 'png', 'jpeg', ...)
    """
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    path: str
    format: str
    codec: str = ''

    def __getitem__(self, key):
        if key not in self.__dataclass_fields__:
            raise KeyError(f"VideoInfo has no field {key!r}; fields are {list(self.keys())}")
        return getattr(self, key)

    def keys(self):
        return self.__dataclass_fields__.keys()

    def get(self, key, default=None):
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    def to_dict(self):
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Source kinds


def _kind(path):
    """'folder', 'gif' or 'ffmpeg' for an existing path; FileNotFoundError naming it otherwise,
    and VideoReadError for what is neither a folder nor a regular file (a FIFO, a device): such a
    file could block its reader forever, so it is refused before anything opens it."""
    if os.path.isdir(path):
        return 'folder'
    if not os.path.exists(path):
        raise FileNotFoundError(f"video not found: {path!r}")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise VideoReadError(f"{path!r} is not a regular file (a FIFO, device or socket): a video "
                             "is a file or a folder of frames; refused without opening it")
    if path.lower().endswith('.gif'):
        return 'gif'
    return 'ffmpeg'


def _natural_key(name):
    """Sort key that orders embedded numbers by value: frame_2 < frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def frame_files(folder):
    """The image files of a frame folder, naturally sorted (full paths)."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)
             and not n.startswith('.')]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def is_frame_folder(path):
    """True when `path` is a directory holding at least one JPEG/PNG frame."""
    return os.path.isdir(path) and any(n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.')
                                       for n in os.listdir(path))


def _check_indices(indices, info):
    """indices -> int64 array, every one in [0, num_frames); IndexError naming the file otherwise."""
    arr = np.asarray(indices)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(0)
    if arr.dtype.kind not in 'iu':
        raise TypeError(f"frame indices must be integers, got dtype {arr.dtype} for {info.path!r}")
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= info.num_frames)]
    if bad.size:
        raise IndexError(f"frame index {int(bad[0])} out of range for {info.path!r}, "
                         f"which has num_frames={info.num_frames} (valid: 0..{info.num_frames - 1})")
    return arr


def _check_pixels(path, width, height):
    """VideoReadError naming the file when a frame of width x height exceeds MAX_FRAME_PIXELS:
    called with the header's size, before any frame is decoded."""
    if width * height > MAX_FRAME_PIXELS:
        raise VideoReadError(
            f"{path!r}: frames of {width}x{height} ({width * height:,} pixels, "
            f"{width * height * 3 / 2**20:,.0f} MiB each as RGB) exceed MAX_FRAME_PIXELS = "
            f"{MAX_FRAME_PIXELS:,}; refused before decoding (raise "
            f"tensorlite.data.io.MAX_FRAME_PIXELS to read it)")


# ----------------------------------------------------------------------------------------------
# ffmpeg


def _ffmpeg_exe():
    import imageio_ffmpeg          # declared in setup.py; imported here so GIF/folders work without
    return imageio_ffmpeg.get_ffmpeg_exe()


def _last_lines(text, n=4):
    # '[in#0 @ 0x55d6...] moov atom not found' -> 'moov atom not found'
    lines = [re.sub(r'^\[[^\]]*@ 0x[0-9a-f]+\]\s*', '', l.strip()) for l in text.splitlines()]
    lines = [l for l in lines if l]
    return ' | '.join(lines[-n:]) if lines else '(ffmpeg printed nothing)'


def _parse_rate(text, unit):
    """'23.98 fps' -> 23.98, '1k tbn' -> 1000.0; None when absent."""
    m = re.search(r'([\d.]+)(k?) ' + unit + r'\b', text)
    if not m:
        return None
    return float(m.group(1)) * (1000.0 if m.group(2) else 1.0)


def _ffmpeg_input(path):
    """The path as ffmpeg's input: 'file:' and the absolute path, so that a name ffmpeg would
    read as a protocol ('pipe:1.mp4', '12:30 clip.mp4', 'http:...') is read as the file it is."""
    return 'file:' + os.path.abspath(path)


# Running ffmpeg. Every call is bounded in time, and no ffmpeg outlives the Python process that
# started it:
# - the probe and frame-count passes are killed after PROBE_TIMEOUT / COUNT_TIMEOUT seconds;
# - the decoding pass is killed when it delivers no byte for DECODE_STALL_TIMEOUT seconds (a long
#   video may take long as a whole; a stalled decoder is what must not hang);
# - writing is killed after WRITE_TIMEOUT seconds plus one per MiB of frames;
# - the processes still running when Python exits (an unclosed frame generator, an exception on
#   the way out) are killed by an atexit hook; a Python killed outright (SIGKILL) closes its end of
#   ffmpeg's output pipe, and ffmpeg then dies of SIGPIPE at its next write.
PROBE_TIMEOUT = 120            # seconds for the demux-only pass that counts packets
COUNT_TIMEOUT = 600            # seconds for the decoding pass that counts a damaged file's frames
DECODE_STALL_TIMEOUT = 120     # seconds the decoding pass may go without delivering a byte
WRITE_TIMEOUT = 120            # seconds to encode a video, plus one per MiB of raw frames

_RUNNING = set()               # ffmpeg processes started by this process and not yet reaped


def _start_ffmpeg(cmd, **kwargs):
    proc = subprocess.Popen(cmd, **kwargs)
    _RUNNING.add(proc)
    return proc


def _stop_ffmpeg(proc):
    """Kill `proc` if it still runs, reap it and forget it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _RUNNING.discard(proc)


@atexit.register
def _kill_running_ffmpeg():
    for proc in list(_RUNNING):
        try:
            _stop_ffmpeg(proc)
        except OSError:
            pass


# A forked child (a DataLoader worker) does not own its parent's ffmpeg processes.
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_RUNNING.clear)


class _FFmpegTimeout(Exception):
    pass


def _run_ffmpeg(cmd, timeout, input=None):
    """subprocess.run(cmd, capture_output=True) bounded by `timeout` seconds: (returncode, stdout
    bytes, stderr bytes); raises _FFmpegTimeout once ffmpeg has been killed."""
    proc = _start_ffmpeg(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _FFmpegTimeout from None
    finally:
        _stop_ffmpeg(proc)
    return proc.returncode, out, err


# What the demux-only pass prints when packets lie partly or wholly beyond the end of the file, or
# are damaged: the packet count then overstates what decodes, and the frames are counted by
# decoding instead.
_DAMAGE = re.compile(r'^\[.*(partial file|Packet corrupt|corrupt input packet|[Tt]runcat)', re.M)


def _probe_ffmpeg(path):
    """VideoInfo from one demux-only ffmpeg pass (`-c copy -f null`): the header gives size, rate
    and codec, the packet count gives num_frames; plus whether the stream looks constant-rate
    (its average rate, 'fps', equals its base rate, 'tbr'), which is when seeking by time is exact."""
    cmd = [_ffmpeg_exe(), '-hide_banner', '-nostdin', '-i', _ffmpeg_input(path), '-map', '0:v:0',
           '-c', 'copy', '-f', 'null', '-', '-progress', 'pipe:1', '-nostats']
    try:
        code, out, err = _run_ffmpeg(cmd, PROBE_TIMEOUT)
    except _FFmpegTimeout:
        raise VideoReadError(f"cannot read {path!r}: ffmpeg took more than {PROBE_TIMEOUT} s to "
                             "scan it (killed)") from None
    err = err.decode(errors='replace')
    if code != 0:
        if 'matches no streams' in err:
            raise VideoReadError(f"{path!r} has no video stream (ffmpeg: {_last_lines(err, 2)})")
        raise VideoReadError(f"cannot read {path!r} as a video: ffmpeg exited with code "
                             f"{code}: {_last_lines(err)}")
    # Only the input section describes the file (the output section repeats it for the null muxer).
    head = err.split('Stream mapping:')[0]
    fmt = re.search(r"Input #0, (.+?), from ", head)
    stream = re.search(r'Stream #0:\d+[^:]*: Video: (.*)', head)
    if not stream:
        raise VideoReadError(f"{path!r} has no video stream: {_last_lines(err, 2)}")
    line = stream.group(1)
    size = re.search(r', (\d+)x(\d+)', line)
    fields = [f.strip() for f in line.split(',')]
    if not size or (len(fields) > 1 and fields[1] == 'none'):
        # pixel format 'none': ffmpeg found the stream but not its parameters (header cut off)
        raise VideoReadError(f"cannot read {path!r}: broken or truncated video stream "
                             f"({_last_lines(err, 3)})")
    width, height = int(size.group(1)), int(size.group(2))
    _check_pixels(path, width, height)
    rotation = re.search(r'rotation of (-?[\d.]+) degrees', head)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width      # ffmpeg applies the display rotation when decoding
    num_frames = _progress_frames(out)
    damaged = bool(_DAMAGE.search(err.split('Stream mapping:', 1)[-1]))
    if damaged and num_frames:
        num_frames = _count_decoded(path)
    if num_frames == 0:
        raise VideoReadError(f"{path!r} contains no video frames (truncated or empty stream): "
                             f"{_last_lines(err, 2)}")
    fps, tbr = _exact_rate(_parse_rate(line, 'fps')), _exact_rate(_parse_rate(line, 'tbr'))
    if not fps:
        dur = re.search(r'Duration: (\d+):(\d+):([\d.]+)', head)
        seconds = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0
        fps = num_frames / seconds if seconds > 0 else (tbr or 0.0)
    if not fps:
        raise VideoReadError(f"cannot determine the frame rate of {path!r}: {line}")
    _check_not_truncated(path, head, num_frames, fps)
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps, width=width,
                     height=height, path=path, format='ffmpeg:' + (fmt.group(1) if fmt else '?'),
                     codec=line.split()[0].rstrip(','))
    return info, not damaged and _can_seek(info, fps, tbr, fmt.group(1) if fmt else '')


def _progress_frames(out):
    """The last 'frame=N' of ffmpeg's -progress output (0 when there is none)."""
    counts = re.findall(r'^frame=(\d+)', out.decode(errors='replace'), flags=re.M)
    return int(counts[-1]) if counts else 0


def _count_decoded(path):
    """The number of frames that decode, counted by one decoding pass to nowhere: for a file whose
    packets are damaged or cut off at the end, so that num_frames is what `read_video` returns."""
    cmd = [_ffmpeg_exe(), '-hide_banner', '-nostdin', '-v', 'error', '-i', _ffmpeg_input(path),
           '-map', '0:v:0', '-fps_mode', 'passthrough', '-f', 'null', '-', '-progress', 'pipe:1',
           '-nostats']
    try:
        code, out, err = _run_ffmpeg(cmd, COUNT_TIMEOUT)
    except _FFmpegTimeout:
        raise VideoReadError(f"cannot read {path!r}: it is damaged, and counting the frames that "
                             f"decode took more than {COUNT_TIMEOUT} s (killed)") from None
    if code != 0:
        raise VideoReadError(f"cannot decode {path!r}: ffmpeg exited with code {code}: "
                             f"{_last_lines(err.decode(errors='replace'))}")
    return _progress_frames(out)


def _exact_rate(rate):
    """ffmpeg prints rates to 2 decimals: snap NTSC rates (23.98, 29.97, 59.94: N * 1000/1001)
    back to their exact value, so that frame k's time k / fps stays right hours into a video."""
    if rate and rate != round(rate):
        ntsc = round(rate * 1.001)
        if abs(ntsc / 1.001 - rate) < 0.006:
            return ntsc / 1.001
    return rate


# Containers that store a presentation time per frame, where `-ss` lands on an exact frame (checked
# against sequential decoding for every start frame, at 24, 25, 30 and 29.97 fps). AVI stores none:
# ffmpeg derives times from packet order there, and a seek landed one frame early for 1 start
# frame in 3 at 24 fps, so AVI is always decoded from the start.
_SEEKABLE_FORMATS = ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm')


def _can_seek(info, fps, tbr, demuxer):
    """Whether frame k can be reached by seeking to time (k - 0.5) / fps: a container with
    per-frame times, a constant rate (average rate 'fps' = base rate 'tbr') known exactly
    (an integer or an NTSC rate)."""
    exact = fps == round(fps) or abs(fps * 1.001 - round(fps * 1.001)) < 1e-9
    constant = tbr is not None and abs(fps - tbr) < 1e-6 * fps
    return demuxer in _SEEKABLE_FORMATS and exact and constant


def _hms(text):
    """'00:01:02.50' -> 62.5"""
    h, m, sec = text.split(':')
    return int(h) * 3600 + int(m) * 60 + float(sec)


def _check_not_truncated(path, head, num_frames, fps):
    """Raise VideoReadError when the header promises clearly more video than the file holds.

    Streaming containers (Matroska/WebM, AVI) stay readable when cut short: ffmpeg just finds fewer
    packets, and without this check a truncated download would pass for a shorter video. The
    promised length is the video stream's own DURATION tag (Matroska) or, when the video is the
    only stream, the container's Duration (an audio track may legitimately outlast the video).
    Tolerance: 10% plus two frames, for rounding and for the last frame's display time.
    """
    tag = re.search(r'Video:.*?\n(?:\s+\S.*\n)*?\s+DURATION\s*: (\d+:\d+:[\d.]+)', head)
    container = re.search(r'Duration: (\d+:\d+:[\d.]+)', head)
    one_stream = len(re.findall(r'Stream #0:\d+', head)) == 1
    promised = _hms(tag.group(1)) if tag else (_hms(container.group(1)) if container and one_stream
                                               else None)
    held = num_frames / fps
    if promised and held < 0.9 * promised - 2.0 / fps:
        raise VideoReadError(f"{path!r} looks truncated: its header promises {promised:.2f} s of video "
                             f"but the file holds {num_frames} frames ({held:.2f} s at {fps:g} fps)")


def _ffmpeg_frames(path, width, height, start=0, fps=None):
    """Generator of decoded frames (H, W, 3) uint8 of the first video stream, from frame `start`.

    start > 0 seeks with `-ss` before `-i`: ffmpeg jumps to the key frame before that time and
    decodes, discarding, up to it, so the first frame out is frame `start` when the frame rate is
    constant and known exactly and the container stores frame times (the caller checks that). The
    time asked is half a frame early so that rounding of timestamps cannot skip the frame. `-fps_mode passthrough` emits every decoded frame exactly
    once (no duplication or dropping to a nominal rate), so frame k here is packet k of the probe.

    Stopping early (closing the generator) kills ffmpeg; reaching the end checks its exit status.
    """
    cmd = [_ffmpeg_exe(), '-hide_banner', '-nostdin', '-v', 'error']
    if start > 0:
        cmd += ['-ss', f'{(start - 0.5) / fps:.6f}']
    cmd += ['-i', _ffmpeg_input(path), '-map', '0:v:0', '-fps_mode', 'passthrough',
            '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-']
    # stderr goes to a file, not a pipe: nobody reads it while frames stream, and a full pipe
    # would block ffmpeg.
    with tempfile.TemporaryFile() as errfile:
        proc = _start_ffmpeg(cmd, stdout=subprocess.PIPE, stderr=errfile, stdin=subprocess.DEVNULL,
                             bufsize=0)
        try:
            if _CAN_SELECT_PIPES:
                os.set_blocking(proc.stdout.fileno(), False)     # see _read_into
            while True:
                frame = np.empty((height, width, 3), np.uint8)
                got = _read_into(proc.stdout, frame.reshape(-1), path)
                if got == 0:
                    break
                if got < frame.size:
                    raise VideoReadError(f"{path!r}: ffmpeg stopped in the middle of a frame "
                                         f"({got} of {frame.size} bytes)")
                yield frame
            code = proc.wait(timeout=DECODE_STALL_TIMEOUT)   # its output is closed: it is exiting
            if code != 0:
                errfile.seek(0)
                raise VideoReadError(f"cannot decode {path!r}: ffmpeg exited with code {code}: "
                                     f"{_last_lines(errfile.read().decode(errors='replace'))}")
        except subprocess.TimeoutExpired:
            raise VideoReadError(f"{path!r}: ffmpeg did not exit {DECODE_STALL_TIMEOUT} s after its "
                                 f"last frame (killed)") from None
        finally:
            proc.stdout.close()
            _stop_ffmpeg(proc)           # kills ffmpeg when the generator is closed early


def _read_into(pipe, out, path):
    """Fill the uint8 array `out` from ffmpeg's output pipe; the number of bytes read (fewer only
    at the end of the stream). VideoReadError when ffmpeg delivers nothing for
    DECODE_STALL_TIMEOUT seconds. The pipe is non-blocking: read what is there, wait (select)
    only when nothing is."""
    view, got = memoryview(out), 0
    if not _CAN_SELECT_PIPES:
        while got < len(view):
            n = pipe.readinto(view[got:])
            if not n:
                break
            got += n
        return got
    fd = pipe.fileno()
    while got < len(view):
        try:
            n = os.readv(fd, [view[got:]])
        except BlockingIOError:
            ready, _, _ = select.select([fd], [], [], DECODE_STALL_TIMEOUT)
            if not ready:
                raise VideoReadError(f"cannot decode {path!r}: ffmpeg delivered nothing for "
                                     f"{DECODE_STALL_TIMEOUT} s (killed)") from None
            continue
        if not n:
            break
        got += n
    return got


# select() waits on pipes on POSIX systems only; elsewhere the decoding pass reads without a stall
# timeout.
_CAN_SELECT_PIPES = os.name == 'posix'


def _read_ffmpeg(path, unique, info, seekable):
    """Decode the frames whose (sorted, unique) indices are `unique`: {index: frame}.
    Stops after the largest index; seeks to the smallest when it is far in and seeking is exact."""
    start = int(unique[0]) if (seekable and unique[0] >= SEEK_MIN_FRAMES) else 0
    wanted = set(unique.tolist())
    last = int(unique[-1])
    frames = _ffmpeg_frames(path, info.width, info.height, start=start, fps=info.fps)
    got, k = _pick(frames, wanted, last, start)
    if len(got) < len(wanted):
        raise VideoReadError(
            f"{path!r}: the stream ended after frame {k} but frame {last} was asked for; the "
            f"container counts num_frames={info.num_frames} (truncated or corrupt file?)")
    return got


# ----------------------------------------------------------------------------------------------
# GIF


def _open_image(path):
    """Pillow's lazy image (only the header is read), its size checked against MAX_FRAME_PIXELS.
    Pillow's own decompression-bomb warning and error are superseded by that check."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            im = Image.open(path)
    except UnidentifiedImageError as e:
        raise VideoReadError(f"cannot read {path!r} as an image: {e}") from None
    except Image.DecompressionBombError as e:
        raise VideoReadError(f"{path!r}: {e} (and MAX_FRAME_PIXELS = {MAX_FRAME_PIXELS:,}); "
                             "refused before decoding") from None
    try:
        _check_pixels(path, im.width, im.height)
    except VideoReadError:
        im.close()
        raise
    return im


def _probe_gif(path):
    im = _open_image(path)
    with im:
        if im.format != 'GIF':
            raise VideoReadError(f"{path!r} is named .gif but is a {im.format} image")
        try:
            num_frames = im.n_frames
        except (OSError, EOFError, SyntaxError) as e:
            raise VideoReadError(f"cannot read {path!r}: corrupt GIF ({e})") from None
        # GIF stores a delay per frame in 1/100 s; the first frame's delay sets the rate (a GIF
        # with a delay of 0 is shown by browsers at about 10 fps).
        delay_ms = im.info.get('duration') or 100
        fps = 1000.0 / delay_ms
        return VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                         width=im.width, height=im.height, path=path, format='gif', codec='gif')


def _gif_frames(path):
    """Generator of the composited frames of a GIF, (H, W, 3) uint8, in order."""
    im = _open_image(path)
    with im:
        for k in range(im.n_frames):
            try:
                im.seek(k)
                _check_pixels(path, im.width, im.height)    # a frame may enlarge the canvas
                yield np.asarray(im.convert('RGB'))
            except (OSError, EOFError, SyntaxError) as e:
                raise VideoReadError(f"cannot decode frame {k} of {path!r}: {e}") from None


def _read_gif(path, unique, info):
    return _pick(_gif_frames(path), set(unique.tolist()), int(unique[-1]))[0]


def _pick(frames, wanted, last, start=0):
    """Pull frames (a generator, numbered from `start`) until index `last`, keeping the `wanted`
    ones; closes the generator (which stops the decoder).  Returns ({index: frame}, the last
    index pulled, start - 1 if none)."""
    got, k = {}, start - 1
    try:
        for k, frame in enumerate(frames, start):
            if k in wanted:
                got[k] = frame
            if k >= last:
                break
    finally:
        frames.close()
    return got, k


# ----------------------------------------------------------------------------------------------
# Frame folders


def _probe_folder(path, fps):
    files = frame_files(path)
    if not files:
        raise VideoReadError(f"frame folder {path!r} contains no {'/'.join(IMAGE_EXTENSIONS)} files")
    with _open_image(files[0]) as im:      # opening reads the header only
        width, height, codec = im.width, im.height, (im.format or '').lower()
    fps = float(fps or FOLDER_FPS)
    return VideoInfo(fps=fps, num_frames=len(files), duration=len(files) / fps, width=width,
                     height=height, path=path, format='folder', codec=codec), files


def _read_image(path, size=None):
    """One frame file -> (H, W, 3) uint8 RGB; VideoReadError before decoding when its header's
    size (width, height) is not `size`."""
    im = _open_image(path)
    with im:
        if size is not None and im.size != size:
            raise VideoReadError(f"frame {path!r} is {im.width}x{im.height} but the first frame of "
                                 f"its folder is {size[0]}x{size[1]}")
        try:
            return np.asarray(im.convert('RGB'))
        except (OSError, SyntaxError) as e:
            raise VideoReadError(f"cannot decode frame file {path!r}: {e}") from None


def _read_folder(files, unique, info):
    return {k: _read_image(files[k], (info.width, info.height)) for k in unique.tolist()}


# ----------------------------------------------------------------------------------------------
# Public API


def _probe(path, fps=None):
    """(info, reader) where reader(unique_sorted_indices) -> {index: frame}."""
    path = os.fspath(path)
    kind = _kind(path)
    if kind == 'folder':
        info, files = _probe_folder(path, fps)
        return info, lambda unique: _read_folder(files, unique, info)
    if kind == 'gif':
        info = _probe_gif(path)
        return info, lambda unique: _read_gif(path, unique, info)
    info, seekable = _probe_ffmpeg(path)
    return info, lambda unique: _read_ffmpeg(path, unique, info, seekable)


def video_info(path, fps=None):
    """Metadata of a video without decoding its frames: a `VideoInfo` (fps, num_frames, duration,
    width, height, path, format, codec).

    For container files num_frames is the number of video packets, counted by a demux-only ffmpeg
    pass (fast: nothing is decoded), and is exactly the number of frames `read_video` returns;
    headers' frame counts and duration * fps are not used because they are missing or wrong too
    often. `fps` is only used for frame folders, which store no rate (default `FOLDER_FPS`).

    Raises FileNotFoundError for a missing path, VideoReadError for anything unreadable.
    """
    return _probe(path, fps)[0]


def read_video(path, frames=None, fps=None):
    """Decode a video into uint8 frames (T, H, W, 3), RGB.

    path:   a video file (.mp4 .avi .mkv .webm ..., via ffmpeg), a .gif, or a folder of JPEG/PNG
            frames (natural order).
    frames: None for every frame, or frame indices in any order, repeats allowed (a sampler's
            output). Only what is needed is decoded: a container is decoded up to the largest
            index and no further (seeking to the smallest when it is at least `SEEK_MIN_FRAMES`
            in, for MP4/MOV/MKV/WebM with a constant rate), a GIF likewise, a folder reads just those files.
            The result has one frame per index, in the order given: T = len(frames).
    fps:    frame rate to report for a frame folder (default `FOLDER_FPS`); ignored otherwise.

    Returns (frames, info) with info a `VideoInfo`, the same as `video_info(path)`.

    Raises FileNotFoundError (missing path), IndexError (an index outside [0, num_frames), naming
    the path, the index and num_frames) and VideoReadError (not a video, corrupt or truncated,
    empty folder), each naming the file.
    """
    info, reader = _probe(path, fps)
    return _decode(info, reader, frames), info


def _decode(info, reader, frames):
    """The frames at indices `frames` (None: all) of a probed video, (T, H, W, 3) uint8."""
    if frames is None:
        indices = np.arange(info.num_frames)
    else:
        indices = _check_indices(frames, info)
    out = np.empty((len(indices), info.height, info.width, 3), np.uint8)
    if len(indices) == 0:
        return out
    unique = np.unique(indices)                    # sorted: decoding goes forward only
    got = reader(unique)
    for i, k in enumerate(indices.tolist()):
        frame = got[k]
        if frame.shape != out.shape[1:]:
            raise VideoReadError(f"frame {k} of {info.path!r} has shape {frame.shape}, "
                                 f"expected {out.shape[1:]}")
        out[i] = frame
    return out


# ----------------------------------------------------------------------------------------------
# Writing

# (codec, extra output options) per container. yuv420p is what players and browsers expect.
_ENCODERS = {
    '.mp4': ('libx264', ['-preset', 'veryfast', '-crf', '{crf}', '-pix_fmt', 'yuv420p']),
    '.mkv': ('libx264', ['-preset', 'veryfast', '-crf', '{crf}', '-pix_fmt', 'yuv420p']),
    '.mov': ('libx264', ['-preset', 'veryfast', '-crf', '{crf}', '-pix_fmt', 'yuv420p']),
    '.avi': ('mpeg4', ['-q:v', '2', '-pix_fmt', 'yuv420p']),
    '.webm': ('libvpx-vp9', ['-crf', '{crf}', '-b:v', '0', '-deadline', 'realtime', '-cpu-used', '8',
                             '-pix_fmt', 'yuv420p']),
}


def _as_frames(frames):
    """frames -> uint8 (T, H, W, 3); (T, H, W) grayscale and (T, H, W, 4) RGBA are converted."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise TypeError(f"write_video expects uint8 frames, got dtype {arr.dtype} "
                        f"(scale float frames to 0..255 and cast first)")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"write_video expects frames (T, H, W, 3), got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.shape[0] == 0:
        raise ValueError("write_video got zero frames")
    return np.ascontiguousarray(arr)


def _write_ffmpeg(tmp, frames, fps, ext, crf):
    codec, options = _ENCODERS[ext]
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"{ext} video with yuv420p chroma needs even width and height, got {w}x{h}: "
                         f"crop or pad the frames (e.g. frames[:, :{h - h % 2}, :{w - w % 2}])")
    cmd = [_ffmpeg_exe(), '-hide_banner', '-nostdin', '-v', 'error', '-y',
           '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', f'{w}x{h}', '-r', f'{fps}', '-i', '-',
           '-an', '-c:v', codec] + [o.format(crf=crf) for o in options] + [tmp]
    timeout = WRITE_TIMEOUT + frames.nbytes / 2**20
    try:
        code, _, err = _run_ffmpeg(cmd, timeout, input=frames.tobytes())
    except _FFmpegTimeout:
        raise OSError(f"ffmpeg took more than {timeout:.0f} s to write a {ext} video of "
                      f"{t} frames {w}x{h} (killed)") from None
    if code != 0:
        raise OSError(f"ffmpeg could not write {ext} video (codec {codec}): "
                      f"{_last_lines(err.decode(errors='replace'))}")


def _write_gif(tmp, frames, fps):
    """An animated GIF, one image per frame, each with its own palette.

    Written block by block with Pillow's GIF encoder rather than `Image.save(save_all=True)`,
    which merges identical consecutive frames into one longer frame (a static clip would come back
    with fewer frames). A frame with at most 256 colours gets an exact palette, so it reads back
    unchanged; one with more is quantized (median cut), which is lossy.
    """
    from PIL import Image, GifImagePlugin
    delay_ms = int(round(1000.0 / fps / 10.0)) * 10      # GIF delays are in 1/100 s
    with open(tmp, 'wb') as fp:
        for k, frame in enumerate(frames):
            colours, index = np.unique(frame.reshape(-1, 3), axis=0, return_inverse=True)
            if len(colours) <= 256:
                im = Image.fromarray(index.reshape(frame.shape[:2]).astype(np.uint8), 'P')
                im.putpalette(colours.astype(np.uint8).tobytes())
            else:
                im = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT)
            if k == 0:
                header, _ = GifImagePlugin.getheader(im, info={'loop': 0, 'duration': delay_ms})
                fp.write(b''.join(header))
            # disposal 1: leave the frame in place; every frame covers the whole canvas anyway
            for chunk in GifImagePlugin.getdata(im, duration=delay_ms, disposal=1,
                                                include_color_table=True):
                fp.write(chunk)
        fp.write(b';')


def write_video(path, frames, fps, crf=18):
    """Write uint8 frames (T, H, W, 3) (or (T, H, W) grayscale) as a video at `fps` frames/s.

    The format follows the path: .mp4/.mkv/.mov (H.264, yuv420p, quality `crf`: 0 lossless ..
    51 worst, 18 visually lossless), .avi (MPEG-4 part 2), .webm (VP9), .gif (exact when a frame
    has at most 256 colours; delays are stored in 1/100 s, so the rate reads back rounded), or a
    folder of PNG frames 000000.png, 000001.png, ... when the path ends with '/' or has no
    extension (exact; the folder stores no rate).

    yuv420p stores colour at half resolution, so mp4/mkv/mov/avi/webm need even width and height:
    odd sizes raise ValueError rather than being resized behind your back.

    The file is written under a temporary name in the same directory and renamed into place
    (os.replace), so a reader never sees a half-written video and an interrupted write leaves the
    old file intact. Returns the path written.
    """
    path = os.fspath(path)
    frames = _as_frames(frames)
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    is_folder = path.endswith(('/', os.sep)) or os.path.splitext(path)[1] == ''
    path = path.rstrip('/' + os.sep) if is_folder else path
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path!r}: directory {parent!r} does not exist")
    if is_folder:
        return _write_folder(path, frames)
    ext = os.path.splitext(path)[1].lower()
    if ext != '.gif' and ext not in _ENCODERS:
        raise ValueError(f"cannot write {path!r}: unknown video extension {ext!r}; expected one of "
                         f"{sorted(list(_ENCODERS) + ['.gif'])} or a folder path ending with '/'")
    with atomic_write(path, suffix=ext) as tmp:     # the extension picks ffmpeg's muxer
        if ext == '.gif':
            _write_gif(tmp, frames, fps)
        else:
            _write_ffmpeg(tmp, frames, fps, ext, crf)
    return path


def _write_folder(path, frames):
    """PNG frames 000000.png ... into a temporary folder, then swapped in for `path`."""
    from PIL import Image
    parent = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.', dir=parent)
    try:
        for k, frame in enumerate(frames):
            Image.fromarray(frame).save(os.path.join(tmp, f'{k:06d}.png'), compress_level=1)
        if os.path.isdir(path):
            # A directory cannot be replaced by rename while it has contents: move the old one
            # aside first (one rename), put the new one in place (a second), then delete the old.
            old = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.old.', dir=parent)
            os.replace(path, os.path.join(old, 'frames'))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        elif os.path.exists(path):
            raise FileExistsError(f"cannot write frame folder {path!r}: a file of that name exists")
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
