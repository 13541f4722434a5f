"""File-based video datasets (tensorlite.data.datasets): layouts, labels, segments, captions,
multi-clip samplers and skip_bad."""
import json
import os
import warnings

import numpy as np
import pytest

from tensorlite.data import io
from tensorlite.data.datasets import VideoFolder, VideoList
from tensorlite.data.io import VideoReadError, read_video, write_video


def coded_frames(t, h=16, w=16, offset=0):
    """Frame k is solid (k + offset, 100, 200): exact in GIF/PNG, so a decoded frame tells its
    index (`frame_ids`)."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = (np.arange(t) + offset)[:, None, None]
    frames[..., 1:] = (100, 200)
    return frames


def frame_ids(clip):
    return clip[:, 0, 0, 0].astype(int).tolist()


@pytest.fixture
def folder_root(tmp_path):
    """root/<class>/<video>: classes given out of order, a frame-folder video, a non-video file."""
    root = tmp_path / 'ucf'
    for cls, name, t in [('walk', 'b.gif', 6), ('walk', 'a.gif', 5), ('jump', 'x.gif', 7),
                         ('clap', 'frames_01/', 9)]:
        (root / cls).mkdir(parents=True, exist_ok=True)
        write_video(str(root / cls / name), coded_frames(t), fps=10)
    (root / 'walk' / 'notes.txt').write_text('not a video')
    return root


def test_video_folder_layout(folder_root):
    ds = VideoFolder(folder_root)
    assert ds.classes == ['clap', 'jump', 'walk']
    assert ds.class_to_idx == {'clap': 0, 'jump': 1, 'walk': 2}
    assert [(os.path.relpath(p, folder_root), y) for p, y in ds.samples] == [
        ('clap/frames_01', 0), ('jump/x.gif', 1), ('walk/a.gif', 2), ('walk/b.gif', 2)]
    assert len(ds) == 4 and ds.targets == [0, 1, 2, 2]
    clip, label = ds[0]                                   # no sampler: every frame, uint8
    assert clip.dtype == np.uint8 and clip.shape == (9, 16, 16, 3) and label == 0
    assert frame_ids(ds[-1][0]) == list(range(6))


def test_video_folder_sampler_transform_and_partial_decode(folder_root, monkeypatch):
    seen = []
    ds = VideoFolder(folder_root, sampler=lambda n: seen.append(n) or np.array([n - 1, 0, 0]),
                     transform=lambda clip: clip.astype(np.float32) / 255)
    spy_calls = []
    real = io._gif_frames

    def counting(path):
        for frame in real(path):
            spy_calls.append(path)
            yield frame
    monkeypatch.setattr(io, '_gif_frames', counting)
    clip, label = ds[1]                                   # jump/x.gif, 7 frames
    assert seen == [7] and label == 1
    assert clip.dtype == np.float32 and clip.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(clip[:, 0, 0, 0] * 255, [6, 0, 0], atol=1e-4)
    assert len(spy_calls) == 7                            # up to frame 6: the whole (tiny) video
    ds.sampler = lambda n: np.array([2, 1])
    spy_calls.clear()
    ds[1]
    assert len(spy_calls) == 3                            # stops after frame 2 of 7


def test_video_folder_multi_clip_decodes_union_once(folder_root, monkeypatch):
    from tensorlite.data.samplers import MultiClip, TwoRate
    decoded = []
    real = io._decode
    monkeypatch.setattr('tensorlite.data.datasets._decode',
                        lambda info, reader, idx: decoded.append(list(idx)) or real(info, reader, idx))
    ds = VideoFolder(folder_root, sampler=lambda n: [np.array([0, 1, 2]), np.array([2, 3, 4])])
    clips, _ = ds[0]
    assert isinstance(clips, list) and [frame_ids(c) for c in clips] == [[0, 1, 2], [2, 3, 4]]
    assert decoded == [[0, 1, 2, 3, 4]]                   # frame 2 decoded once
    ds.sampler = MultiClip(num_clips=3, num_frames=2, stride=1)
    clips, _ = ds[0]
    assert len(clips) == 3 and all(c.shape == (2, 16, 16, 3) for c in clips)
    ds.sampler = TwoRate(alpha=2, num_frames=4, stride=1, training=False)
    slow, fast = ds[0][0]
    assert frame_ids(slow) == frame_ids(fast)[::2]


def test_video_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a directory'):
        VideoFolder(tmp_path / 'nope')
    (tmp_path / 'empty_class').mkdir()
    with pytest.raises(FileNotFoundError, match='empty_class.*holds no videos'):
        VideoFolder(tmp_path)


def _bad_root(tmp_path):
    root = tmp_path / 'kinetics'
    (root / 'a').mkdir(parents=True)
    (root / 'b').mkdir()
    write_video(root / 'a' / '1.gif', coded_frames(4, offset=10), fps=10)
    (root / 'a' / '2.mp4').write_text('<html>404 Not Found</html>')     # a failed download
    write_video(root / 'b' / '3.gif', coded_frames(4, offset=30), fps=10)
    return root


def test_without_skip_bad_the_error_names_the_file(tmp_path):
    ds = VideoFolder(_bad_root(tmp_path))
    with pytest.raises(VideoReadError, match=r'2\.mp4'):
        ds[1]


def test_skip_bad_moves_on_counts_and_reports_once(tmp_path):
    ds = VideoFolder(_bad_root(tmp_path), skip_bad=True)
    assert len(ds) == 3
    with pytest.warns(UserWarning, match=r'2\.mp4') as record:
        clip, label = ds[1]                 # the bad file: the next one of its class (wrapping)
    assert len(record) == 1
    assert frame_ids(clip) == [10, 11, 12, 13] and label == 0
    assert ds.num_bad == 1 and ds.bad_files == [str(ds.samples[1][0])]
    with warnings.catch_warnings():
        warnings.simplefilter('error')                   # no second report
        for _ in range(2):
            assert frame_ids(ds[1][0]) == [10, 11, 12, 13]
        assert [frame_ids(ds[i][0])[0] for i in range(len(ds))] == [10, 10, 30]
    assert ds.num_bad == 1 and len(ds) == 3


def test_skip_bad_wraps_around_and_all_bad_raises(tmp_path):
    root = tmp_path / 'r'
    (root / 'c').mkdir(parents=True)
    write_video(root / 'c' / 'a.gif', coded_frames(3), fps=10)
    (root / 'c' / 'z.mp4').write_bytes(b'\x00' * 100)
    ds = VideoFolder(root, skip_bad=True)
    with pytest.warns(UserWarning):
        assert frame_ids(ds[1][0]) == [0, 1, 2]          # last index wraps to the first
    (root / 'c' / 'a.gif').write_bytes(b'GIF89a broken')
    ds = VideoFolder(root, skip_bad=True)
    with pytest.warns(UserWarning), pytest.raises(VideoReadError, match="all 2 videos of class 'c' are unreadable"):
        ds[0]
    assert ds.num_bad == 2


def test_check_files_reports_all_bad_in_one_warning(tmp_path):
    ds = VideoFolder(_bad_root(tmp_path), skip_bad=True)
    with pytest.warns(UserWarning, match=r'1 unreadable videos:.*2\.mp4') as record:
        bad = ds.check_files()
    assert len(record) == 1 and bad == [ds.samples[1][0]] and ds.num_bad == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert ds.check_files() == [] and frame_ids(ds[1][0])[0] == 10     # class a's other video


# ---- VideoList ----------------------------------------------------------------------------------

@pytest.fixture
def list_root(tmp_path):
    """Two GIFs at 20 fps (frame k at k/20 s) and a frame folder, plus CSV and JSON annotations."""
    write_video(tmp_path / 'v1.gif', coded_frames(40), fps=20)
    write_video(tmp_path / 'v2.gif', coded_frames(30, offset=100), fps=20)
    write_video(str(tmp_path / 'v3') + '/', coded_frames(12, offset=200), fps=20)
    rows = [dict(path='v1.gif', label='run', start='0.5', end='1.0', caption='a man runs'),
            dict(path='v2.gif', label='jump', start='', end='0.25', caption='a girl jumps'),
            dict(path='v3', label='run', start='0.2', end='', caption='running again')]
    header = 'path,label,start,end,caption\n'
    (tmp_path / 'ann.csv').write_text(header + ''.join(
        f"{r['path']},{r['label']},{r['start']},{r['end']},{r['caption']}\n" for r in rows))
    (tmp_path / 'ann.json').write_text(json.dumps(
        [{k: (float(v) if k in ('start', 'end') and v else v) for k, v in r.items() if v != ''}
         for r in rows]))
    return tmp_path


@pytest.mark.parametrize('name', ['ann.csv', 'ann.json'])
def test_video_list_trims_segments_and_maps_labels(list_root, name):
    ds = VideoList(list_root / name, fps=20)
    assert ds.classes == ['jump', 'run'] and ds.class_to_idx == {'jump': 0, 'run': 1}
    assert len(ds) == 3 and ds.targets == [1, 0, 1]
    clip, label = ds[0]
    assert frame_ids(clip) == list(range(10, 20)) and label == 1     # [0.5, 1.0) s at 20 fps
    assert frame_ids(ds[1][0]) == [100, 101, 102, 103, 104]          # [start of video, 0.25)
    assert frame_ids(ds[2][0]) == list(range(204, 212))              # [0.2 s, end): folder at 20 fps


def test_video_list_sampler_sees_the_segment(list_root):
    seen = []
    ds = VideoList(list_root / 'ann.csv', sampler=lambda n: seen.append(n) or np.array([0, n - 1]))
    clip, _ = ds[0]
    assert seen == [10] and frame_ids(clip) == [10, 19]
    bad = VideoList(list_root / 'ann.csv', sampler=lambda n: np.array([n]))
    with pytest.raises(IndexError, match='v1.gif'):
        bad[0]


def test_video_list_captions(list_root):
    ds = VideoList(list_root / 'ann.csv', target='caption')
    assert ds[1][1] == 'a girl jumps'
    ds = VideoList(list_root / 'ann.json', target='both')
    assert ds[0][1] == (1, 'a man runs')
    with pytest.raises(ValueError, match='target'):
        VideoList(list_root / 'ann.csv', target='text')


def test_video_list_integer_labels_root_and_errors(tmp_path, list_root):
    (tmp_path / 'ints.csv').write_text('path,label\nv1.gif,7\nv2.gif,3\n')
    ds = VideoList(tmp_path / 'ints.csv')
    assert ds.targets == [7, 3] and ds.classes == [3, 7]
    other = tmp_path / 'elsewhere'
    other.mkdir()
    (other / 'a.csv').write_text('path,label\nv2.gif,1\n')
    assert VideoList(other / 'a.csv', root=tmp_path)[0][0].shape == (30, 16, 16, 3)
    (tmp_path / 'nopath.csv').write_text('file,label\nv1.gif,1\n')
    with pytest.raises(ValueError, match='nopath.csv.*path'):
        VideoList(tmp_path / 'nopath.csv')
    (tmp_path / 'nolabel.csv').write_text('path,caption\nv1.gif,hello\n')
    with pytest.raises(ValueError, match='row 1.*label'):
        VideoList(tmp_path / 'nolabel.csv')
    assert VideoList(tmp_path / 'nolabel.csv', target='caption')[0][1] == 'hello'
    (tmp_path / 'late.csv').write_text('path,label,start,end\nv1.gif,1,5.0,6.0\n')
    with pytest.raises(VideoReadError, match='v1.gif.*no frames'):
        VideoList(tmp_path / 'late.csv')[0]                            # 40 frames = 2 s
    (tmp_path / 'back.csv').write_text('path,label,start,end\nv1.gif,1,1.0,0.5\n')
    with pytest.raises(ValueError, match='back.csv.*end'):
        VideoList(tmp_path / 'back.csv')
    with pytest.raises(FileNotFoundError, match='missing.csv'):
        VideoList(tmp_path / 'missing.csv')


def test_video_list_skip_bad(list_root):
    (list_root / 'with_bad.csv').write_text('path,label\nv1.gif,0\ngone.mp4,1\nv2.gif,1\n')
    ds = VideoList(list_root / 'with_bad.csv', skip_bad=True)
    with pytest.warns(UserWarning, match='gone.mp4'):
        clip, label = ds[1]
    assert frame_ids(clip)[0] == 100 and label == 1 and ds.num_bad == 1
    with pytest.raises(FileNotFoundError, match='gone.mp4'):
        VideoList(list_root / 'with_bad.csv')[1]
