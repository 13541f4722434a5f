"""tensorlite.plots: every function writes a valid PNG (atomically, through matplotlib's Agg
canvas, with pyplot made unimportable), rejects bad shapes and keys with errors that say what
came, and without matplotlib raises an ImportError that says how to install it."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip('matplotlib')
from PIL import Image  # noqa: E402

import tensorlite as tl  # noqa: E402
from tensorlite import plots  # noqa: E402

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(autouse=True)
def no_pyplot(monkeypatch):
    """Every test runs with pyplot unimportable: the functions draw on a Figure with its own Agg
    canvas and never touch pyplot's global state (its backend, its current figure)."""
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', None)


def assert_png(path, min_side=200, max_side=4000):
    """`path` is a complete PNG of a sensible size with a drawing on it, and nothing else was left
    in its folder (no temporary file of the atomic write)."""
    with open(path, 'rb') as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()                                   # decodes every row: a truncated file fails
        width, height = image.size
        pixels = np.asarray(image.convert('RGB'))
    assert min_side <= width <= max_side and min_side <= height <= max_side, image.size
    packed = pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)   # RGB -> int
    assert len(np.unique(packed)) > 20, 'the image is (nearly) blank'
    leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.startswith('.')]
    assert leftovers == []
    return width, height


def history(epochs=4, validation=True, accuracy=True):
    return [{'epoch': e, 'train_loss': 2.0 / (e + 1),
             'train_accuracy': 0.2 + 0.1 * e if accuracy else None,
             'val_loss': 2.1 / (e + 1) if validation else None,
             'val_accuracy': 0.15 + 0.1 * e if validation and accuracy else None,
             'lr': 0.1 * 0.1 ** (e // 2), 'seconds': 1.0, 'clips_per_second': 10.0}
            for e in range(epochs)]


def records():
    rng = np.random.default_rng(0)
    return [{'model': model, 'family': family, 'accuracy': float(rng.random()),
             'reversed_accuracy': float(rng.random()), 'shuffled_accuracy': float(rng.random()),
             'chance': 1 / 6}
            for model in ('c3d', 'tsn') for family in ('order', 'scene', 'motion')]


def attention(shape, seed=0):
    w = np.random.default_rng(seed).random(shape)
    return w / w.sum(-1, keepdims=True)


# ---- valid input writes a PNG -------------------------------------------------------------------

def test_plot_history_writes_png(tmp_path):
    path = str(tmp_path / 'curves.png')
    rows = history()
    rows[1]['val_loss'] = rows[2]['val_accuracy'] = None    # gaps
    assert plots.plot_history(rows, path) == path
    width, height = assert_png(path)
    assert width > height                              # two panels side by side
    # a run without validation or accuracy (a captioning model) still draws its loss
    path2 = tmp_path / 'sub' / 'loss_only.png'          # missing folders are created
    assert plots.plot_history(history(validation=False, accuracy=False), path2) == path2
    assert_png(str(path2))


def test_plot_confusion_matrix_writes_png_that_depends_on_the_matrix(tmp_path):
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])     # class 2 has no sample
    a = plots.plot_confusion_matrix(matrix, str(tmp_path / 'a.png'), class_names=['x', 'y', 'z'])
    b = plots.plot_confusion_matrix(matrix, str(tmp_path / 'b.png'), normalize=False)
    c = plots.plot_confusion_matrix(matrix.T.copy(), str(tmp_path / 'c.png'),
                                    class_names=['x', 'y', 'z'])
    for path in (a, b, c):
        assert_png(path)
    contents = [open(p, 'rb').read() for p in (a, b, c)]
    assert len(set(contents)) == 3


def test_plot_attention_matrices(tmp_path):
    single = plots.plot_attention(attention((5, 7)), str(tmp_path / 'one.png'), title='layer 0')
    # per head, from a Tensor: what nn.MultiheadAttention returns with need_weights
    mha = tl.nn.MultiheadAttention(8, 2)
    x = tl.randn(6, 8)                                  # unbatched (L, E)
    _, weights = mha(x, x, x, average_attn_weights=False)
    assert weights.shape == (2, 6, 6)
    heads = plots.plot_attention(weights, str(tmp_path / 'mha.png'))
    for path in (single, heads):
        assert_png(path)
    other = plots.plot_attention(attention((5, 7), seed=1), str(tmp_path / 'other.png'),
                                 title='layer 0')
    assert open(single, 'rb').read() != open(other, 'rb').read()


def test_plot_attention_over_frames(tmp_path):
    T, h, w = 4, 3, 3
    with_cls = attention((2, 1 + T * h * w))            # two queries, class token first
    frames = np.random.default_rng(0).integers(0, 256, (8, 24, 24, 3), dtype=np.uint8)
    over = plots.plot_attention(with_cls, str(tmp_path / 'over.png'), frame=frames,
                                grid=(T, h, w), title='class token')
    width, height = assert_png(over)
    assert width > height                               # a row of T frames per query
    # one query's attention per head, without a class token, over float grayscale frames
    per_head = plots.plot_attention(attention((2, 1, T * h * w)), str(tmp_path / 'heads.png'),
                                    grid=[T, h, w], frame=frames[:4, :, :, 0] / 255.0)
    bare = plots.plot_attention(attention((T * h * w,)), str(tmp_path / 'bare.png'),
                                grid=(T, h, w))
    for path in (per_head, bare):
        assert_png(path)


def test_plot_flow_writes_png(tmp_path):
    y, x = np.mgrid[0:16, 0:20]
    flows = np.stack([np.stack([np.cos(x / 4 + t), np.sin(y / 4 - t)], -1) for t in range(3)])
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 20, 3), dtype=np.uint8)
    strip = plots.plot_flow(flows.astype(np.float32), str(tmp_path / 'strip.png'), frames=frames)
    one = plots.plot_flow(flows[0], str(tmp_path / 'one.png'), max_flow=2.0)
    w_strip, h_strip = assert_png(strip)
    w_one, h_one = assert_png(one)
    assert h_strip > h_one                              # the frames sit above the flows


def test_plot_compare_writes_png(tmp_path):
    rows = records()
    rows[0]['shuffled_accuracy'] = None                 # a missing bar
    path = plots.plot_compare(rows[1:], str(tmp_path / 'compare.png'))   # c3d not run on order
    width, height = assert_png(path)                    # three families: a 2 x 2 grid
    two = plots.plot_compare([r for r in rows[1:] if r['family'] != 'order'],
                             str(tmp_path / 'two.png'))
    two_width, two_height = assert_png(two)             # two families: side by side
    assert two_width > 1.5 * two_height
    assert width == two_width and height == 2 * two_height


# ---- bad input ----------------------------------------------------------------------------------

def test_history_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'h.png')
    with pytest.raises(ValueError, match='empty'):
        plots.plot_history([], path)
    broken = history()
    del broken[2]['val_loss']
    with pytest.raises(ValueError, match=r"history\[2\] lacks the key\(s\) \['val_loss'\]"):
        plots.plot_history(broken, path)
    with pytest.raises(TypeError, match='list of dicts.*got dict'):
        plots.plot_history(history()[0], path)
    with pytest.raises(ValueError, match="must end in '.png'.*h.jpg"):
        plots.plot_history(history(), str(tmp_path / 'h.jpg'))
    assert os.listdir(tmp_path) == []


def test_confusion_matrix_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'c.png')
    with pytest.raises(ValueError, match=r'square \(K, K\).*\(2, 3\)'):
        plots.plot_confusion_matrix(np.ones((2, 3)), path)
    with pytest.raises(ValueError, match='counts >= 0'):
        plots.plot_confusion_matrix(-np.eye(2), path)
    with pytest.raises(ValueError, match='K = 3, got 2 names'):
        plots.plot_confusion_matrix(np.eye(3), path, class_names=['a', 'b'])
    with pytest.raises(TypeError, match='dtype'):
        plots.plot_confusion_matrix(np.array([['a', 'b'], ['c', 'd']]), path)
    assert os.listdir(tmp_path) == []


def test_attention_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'a.png')
    with pytest.raises(ValueError, match=r'\(L, S\) or \(heads, L, S\).*\(1, 2, 3, 4\)'):
        plots.plot_attention(np.ones((1, 2, 3, 4)), path)
    with pytest.raises(ValueError, match=r'S = T\*h\*w = 8 \(or 9.*\(2, 10\)'):
        plots.plot_attention(np.ones((2, 10)), path, grid=(2, 2, 2))
    with pytest.raises(ValueError, match=r'grid must be \(T, h, w\).*\(2, 2\)'):
        plots.plot_attention(np.ones((2, 4)), path, grid=(2, 2))
    with pytest.raises(ValueError, match='frame needs grid'):
        plots.plot_attention(np.ones((2, 4)), path, frame=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="3 frame\\(s\\).*multiple of grid's T = 2"):
        plots.plot_attention(np.ones(8), path, grid=(2, 2, 2), frame=np.zeros((3, 4, 4, 3)))
    with pytest.raises(ValueError, match=r'frame must be \(T, H, W, 3\).*\(2, 4, 4, 2\)'):
        plots.plot_attention(np.ones(8), path, grid=(2, 2, 2), frame=np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match='100 quer.*400 panels'):
        plots.plot_attention(np.ones((100, 8)), path, grid=(4, 1, 2))
    assert os.listdir(tmp_path) == []


def test_flow_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'f.png')
    with pytest.raises(ValueError, match=r'\(T-1, H, W, 2\).*\(2, 8, 8, 3\)'):
        plots.plot_flow(np.zeros((2, 8, 8, 3)), path)
    with pytest.raises(ValueError, match=r'2 flow\(s\) of 8x8 need 3 frames.*\(2, 8, 8, 3\)'):
        plots.plot_flow(np.zeros((2, 8, 8, 2)), path, frames=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r'need 3 frames of 8x8.*\(3, 8, 9, 3\)'):
        plots.plot_flow(np.zeros((2, 8, 8, 2)), path, frames=np.zeros((3, 8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match='max_flow must be a finite number > 0.*-1'):
        plots.plot_flow(np.zeros((8, 8, 2)), path, max_flow=-1)
    assert os.listdir(tmp_path) == []


def test_compare_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'c.png')
    rows = records()
    del rows[1]['chance']
    with pytest.raises(ValueError, match=r"records\[1\] lacks the key\(s\) \['chance'\]"):
        plots.plot_compare(rows, path)
    with pytest.raises(ValueError, match="repeats model 'c3d' on family 'order'"):
        plots.plot_compare(records() + records()[:1], path)
    rows = records()
    rows[2]['accuracy'] = 87.5                          # a percentage, not a fraction
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\].*'accuracy': 87.5"):
        plots.plot_compare(rows, path)
    with pytest.raises(ValueError, match='empty'):
        plots.plot_compare([], path)
    assert os.listdir(tmp_path) == []


# ---- matplotlib missing, atomic writes ----------------------------------------------------------

CALLS = {
    'plot_history': lambda p: plots.plot_history(history(), p),
    'plot_confusion_matrix': lambda p: plots.plot_confusion_matrix(np.eye(3), p),
    'plot_attention': lambda p: plots.plot_attention(attention((4, 4)), p),
    'plot_flow': lambda p: plots.plot_flow(np.zeros((4, 4, 2)), p),
    'plot_compare': lambda p: plots.plot_compare(records(), p),
}


@pytest.mark.parametrize('name', sorted(CALLS))
def test_missing_matplotlib_says_how_to_install(name, tmp_path, monkeypatch):
    # None in sys.modules makes `import matplotlib...` raise ImportError, as if not installed
    for module in [m for m in sys.modules if m == 'matplotlib' or m.startswith('matplotlib.')]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    with pytest.raises(ImportError, match=r'plots need matplotlib: pip install -e "\.\[plot\]"'):
        CALLS[name](str(tmp_path / 'x.png'))
    assert os.listdir(tmp_path) == []


def test_a_failed_drawing_leaves_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'curves.png')
    before = b'the previous figure'
    with open(path, 'wb') as f:
        f.write(before)
    from matplotlib.figure import Figure

    def broken_savefig(self, *args, **kwargs):
        raise RuntimeError('renderer crashed')
    monkeypatch.setattr(Figure, 'savefig', broken_savefig)
    with pytest.raises(RuntimeError, match='renderer crashed'):
        plots.plot_history(history(epochs=9), path)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['curves.png']
