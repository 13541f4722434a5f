"""tensorlite.plots: every function writes a valid PNG (atomically, through matplotlib's Agg
canvas, with pyplot made unimportable), rejects bad shapes and keys with errors that say what
came, and without matplotlib raises an ImportError that says how to install it."""
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip('matplotlib')
from PIL import Image  # noqa: E402

import tensorlite as tl  # noqa: E402
from tensorlite import plots  # noqa: E402

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
MAX_PIXELS_WIDE = 2000                # every figure, whatever its input: readable at 1,600 px
COMPARE_JSON = os.path.join(os.path.dirname(__file__), '..', 'docs', 'results', 'compare.json')


@pytest.fixture(autouse=True)
def no_pyplot(monkeypatch):
    """Every test runs with pyplot unimportable: the functions draw on a Figure with its own Agg
    canvas and never touch pyplot's global state (its backend, its current figure)."""
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', None)


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions draw, in order (each is still written by the real _save),
    to read their axes, ticks and texts."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)
    monkeypatch.setattr(plots, '_save', keep)
    return figures


def texts(fig):
    """Every string drawn on `fig`: titles, tick labels, free text, the suptitle."""
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, 'get_text'))
            if t.get_text()]


def png_width(path):
    with Image.open(path) as image:
        return image.size[0]


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


def family_axes(fig):
    """{family: Axes} of a compare figure (the panels titled with a family)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title() in plots.FAMILY_ORDER}


def test_plot_compare_writes_png(tmp_path, drawn):
    rows = records()
    rows[0]['shuffled_accuracy'] = None                 # a missing bar
    path = plots.plot_compare(rows[1:], str(tmp_path / 'compare.png'))   # c3d not run on order
    assert_png(path)
    two = plots.plot_compare([r for r in rows[1:] if r['family'] != 'order'],
                             str(tmp_path / 'two.png'))
    assert_png(two)
    # three families: a 2 x 2 grid (scene, motion above; order below); two: side by side
    corners = {f: ax.get_position().p0.round(3) for f, ax in family_axes(drawn[0]).items()}
    assert corners['scene'][1] == corners['motion'][1] > corners['order'][1]
    assert corners['scene'][0] == corners['order'][0] < corners['motion'][0]
    corners = {f: ax.get_position().p0.round(3) for f, ax in family_axes(drawn[1]).items()}
    assert sorted(corners) == ['motion', 'scene'] and corners['scene'][1] == corners['motion'][1]


# ---- readable figures: width, ticks, scales, labels ---------------------------------------------

def sampling_result(samplers):
    return {'experiment': 'sampling', 'records': [
        {'train_sampler': f'sampler{k}', 'stride': 2, 'views': 4, 'centre_accuracy': 0.5,
         'multi_clip_accuracy': 0.6, 'chance': 0.25} for k in range(samplers)]}


def many_models(n):
    rng = np.random.default_rng(1)
    return [{'model': f'model_{m}', 'family': family, 'accuracy': float(rng.random()),
             'reversed_accuracy': float(rng.random()), 'shuffled_accuracy': float(rng.random()),
             'chance': 0.25} for m in range(n) for family in plots.FAMILY_ORDER]


def compare_records():
    with open(COMPARE_JSON) as f:
        return json.load(f)


FLOWS = np.random.default_rng(0).normal(size=(24, 16, 20, 2)).astype(np.float32)
WIDE = {   # inputs that made figures wider than 2,000 px: many classes, frames, flows, models
    'history of 300 epochs': lambda p: plots.plot_history(history(300), p),
    '60 classes': lambda p: plots.plot_confusion_matrix(np.eye(60) * 5 + 1, p),
    '8 heads': lambda p: plots.plot_attention(attention((8, 6, 6)), p),
    'attention over 32 frames': lambda p: plots.plot_attention(attention((2, 32 * 4)), p,
                                                               grid=(32, 2, 2)),
    '24 flows': lambda p: plots.plot_flow(FLOWS, p),
    '24 flows, one row': lambda p: plots.plot_flow(FLOWS, p, columns=24),
    '24 flows and their frames': lambda p: plots.plot_flow(
        FLOWS, p, frames=np.zeros((25, 16, 20), np.uint8), columns=12),
    'flows of 720p frames': lambda p: plots.plot_flow(
        np.ones((3, 720, 1280, 2), np.float32), p, frames=np.zeros((4, 720, 1280, 3), np.uint8)),
    'compare.json (10 models, 4 families)': lambda p: plots.plot_compare(compare_records(), p),
    'compare of 20 models': lambda p: plots.plot_compare(many_models(20), p),
    'sampling with 9 samplers': lambda p: plots.plot_experiment(sampling_result(9), p),
}


@pytest.mark.parametrize('case', sorted(WIDE))
def test_every_figure_is_at_most_2000_pixels_wide(case, tmp_path):
    path = str(tmp_path / 'figure.png')
    WIDE[case](path)
    assert png_width(path) <= MAX_PIXELS_WIDE


def ticks_shown(axis):
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklocs() if low <= t <= high]


@pytest.mark.parametrize('epochs', [2, 4, 7])
def test_history_epoch_ticks_are_whole_epochs(epochs, tmp_path, drawn):
    plots.plot_history(history(epochs), str(tmp_path / 'h.png'))
    for ax in drawn[0].axes:
        ticks = ticks_shown(ax.xaxis)
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)


def test_history_has_a_learning_rate_axis_only_when_the_rate_changes(tmp_path, drawn):
    constant = [dict(row, lr=0.001) for row in history(5)]
    plots.plot_history(constant, str(tmp_path / 'constant.png'))
    plots.plot_history(history(5), str(tmp_path / 'steps.png'))     # 0.1, 0.1, 0.01, ...
    no_rate = [{k: v for k, v in row.items() if k != 'lr'} for row in history(5)]
    plots.plot_history(no_rate, str(tmp_path / 'none.png'))
    ylabels = [[ax.get_ylabel() for ax in fig.axes] for fig in drawn]
    assert ylabels == [['loss', 'accuracy'], ['loss', 'accuracy', 'learning rate'],
                       ['loss', 'accuracy']]
    assert drawn[0].axes[0].get_title() == 'loss (learning rate 0.001 throughout)'
    assert drawn[2].axes[0].get_title() == 'loss'


def flow_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title().startswith('flow ')]


def test_flow_wraps_into_rows(tmp_path, drawn):
    frames = np.random.default_rng(0).integers(0, 256, (21, 16, 20, 3), dtype=np.uint8)
    plots.plot_flow(FLOWS[:20], str(tmp_path / 'rows.png'), frames=frames, columns=5)
    fig = drawn[0]
    flow_axes = [ax for ax in fig.axes if ax.get_title().startswith('flow ')]
    rows = sorted({round(ax.get_position().y0, 3) for ax in flow_axes}, reverse=True)
    assert len(flow_axes) == 20 and len(rows) == 4
    first_row = [ax.get_title() for ax in flow_axes if round(ax.get_position().y0, 3) == rows[0]]
    assert first_row == [f'flow {t} \u2192 {t + 1}' for t in range(5)]
    # each row shows its flows' frames: the last frame of a row begins the next one
    frame_titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith('frame ')]
    assert len(frame_titles) == 24 and frame_titles.count('frame 5') == 2
    # by default, rows of at most 6 flows, filled evenly: 8 flows are two rows of 4
    plots.plot_flow(FLOWS[:8], str(tmp_path / 'default.png'))
    y0 = [round(ax.get_position().y0, 3) for ax in drawn[1].axes
          if ax.get_title().startswith('flow ')]
    assert sorted(y0.count(y) for y in set(y0)) == [4, 4]


def test_flow_of_large_frames_is_shown_averaged_down(tmp_path, drawn):
    H, W = 720, 1280
    flows = np.zeros((2, H, W, 2), np.float32)
    flows[:, :, :, 0] = np.linspace(0, 4, W)                # dx grows to the right
    frames = np.zeros((3, H, W, 3), np.uint8)
    path = plots.plot_flow(flows, str(tmp_path / 'hd.png'), frames=frames)
    assert png_width(path) <= MAX_PIXELS_WIDE
    panels = [ax for ax in drawn[0].axes if ax.get_title().startswith(('flow ', 'frame '))]
    assert len(panels) == 5
    for ax in panels:                 # about one image pixel per pixel of the panel, not 6 x 6
        shown = ax.get_images()[0].get_array().shape
        panel = ax.get_window_extent()
        assert panel.width / 2 <= shown[1] <= panel.width + 1, (ax.get_title(), shown, panel)
        assert panel.height / 2 <= shown[0] <= panel.height + 1, (ax.get_title(), shown, panel)


def test_flow_colour_scale_is_robust(tmp_path, drawn):
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, (6, 32, 32))
    speed = rng.uniform(1.0, 2.0, (6, 32, 32))
    flows = np.stack([speed * np.cos(angle), speed * np.sin(angle)], -1).astype(np.float32)
    assert 1.9 <= plots.flow_scale(flows) <= 2.0
    wild = flows.copy()
    wild[2, 5, 7] = (1000.0, 0.0)                          # one wild vector
    assert 1.9 <= plots.flow_scale(wild) <= 2.0
    cut = flows.copy()
    cut[3] *= 40                                           # a scene cut: one flow 40 x larger
    assert 1.9 <= plots.flow_scale(cut) <= 2.0
    assert plots.flow_scale(cut[2:5]) < 2.0                # also among three
    assert plots.flow_scale(cut[3:5]) > 40                 # of two, neither is the odd one out
    plots.plot_flow(cut, str(tmp_path / 'cut.png'))
    assert any('up to 1.99 px (99th percentile' in t for t in texts(drawn[0]))
    plots.plot_flow(cut, str(tmp_path / 'given.png'), max_flow=80)   # a given scale is kept
    assert any('up to 80 px (given' in t for t in texts(drawn[1]))
    # a small object moving on a still background: its speed, and 1 px when nothing moves
    still = np.zeros((3, 32, 32, 2), np.float32)
    still[1, 3, 4] = (0.0, 3.0)
    assert plots.flow_scale(still) == 3.0
    assert plots.flow_scale(np.zeros((2, 8, 8, 2))) == 1.0
    assert plots.flow_scale(np.full((8, 8, 2), np.nan)) == 1.0


def test_flow_panels_are_labelled_with_frame_indices(tmp_path, drawn):
    frames = np.zeros((4, 16, 20), np.float32)
    plots.plot_flow(FLOWS[:3], str(tmp_path / 'f.png'), frames=frames,
                    frame_indices=[10, 11, 12, 13])
    plots.plot_flow(FLOWS[0], str(tmp_path / 'one.png'))
    titles = [ax.get_title() for ax in drawn[0].axes]
    assert [t for t in titles if t.startswith('frame ')] == [f'frame {t}' for t in range(10, 14)]
    assert flow_titles(drawn[0]) == ['flow 10 \u2192 11', 'flow 11 \u2192 12',
                                     'flow 12 \u2192 13']
    assert flow_titles(drawn[1]) == ['flow 0 \u2192 1']
    # the colour-wheel key: an image of the wheel with dx, dy axes in pixels
    for fig in drawn:
        key = [ax for ax in fig.axes if ax.get_title().startswith('key')]
        assert len(key) == 1 and key[0].get_xlabel() == 'dx (px)' and key[0].get_images()


def test_compare_shows_the_lesson_claims_held_and_failed(tmp_path, drawn):
    from tensorlite.compare import lesson_checks
    good = compare_records()
    checks = lesson_checks(good)
    assert [(what, passed) for what, _, passed in plots._lesson_claims(good)] == checks
    bad = [dict(r) for r in good]
    for r in bad:
        if (r['model'], r['family']) == ('vivit', 'order'):
            r['reversed_accuracy'] = 0.9                     # vivit no longer reads the order
    plots.plot_compare(good, str(tmp_path / 'good.png'))
    plots.plot_compare(bad, str(tmp_path / 'bad.png'))
    for fig, failed in zip(drawn, ([], ['vivit >= 90 % on order, reversed clips >= 30 points '
                                        'lower'])):
        shown = texts(fig)
        assert f"{len(checks) - len(failed)} of {len(checks)} hold" in ' '.join(shown)
        for what, _ in checks:                         # every claim, marked held or failed
            assert what in shown
            mark = plots.CLAIM_MARK[what not in failed]
            label = next(t for t in fig.findobj(lambda a: hasattr(a, 'get_text'))
                         if t.get_text() == what)
            x, y = label.get_position()
            assert any(t.get_text() == mark and t.get_position()[1] == y
                       for t in fig.findobj(lambda a: hasattr(a, 'get_text')))
        # a mark above each bar group the claims read: order's vivit group crossed when it fails
        order = family_axes(fig)['order']
        marks = [t.get_text() for t in order.texts if t.get_text() in plots.CLAIM_MARK.values()]
        assert len(marks) == 9 and marks.count(plots.CLAIM_MARK[False]) == len(failed)
    # records no claim reads: no claims panel
    plots.plot_compare(many_models(2), str(tmp_path / 'none.png'))
    assert not any('claims' in t for t in texts(drawn[2]))


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
    with pytest.raises(ValueError, match='columns must be a positive int.*0'):
        plots.plot_flow(np.zeros((8, 8, 2)), path, columns=0)
    with pytest.raises(ValueError, match=r'frame_indices must number the 3 frames of 2 flow\(s\), '
                                         r'got 2'):
        plots.plot_flow(np.zeros((2, 8, 8, 2)), path, frame_indices=[4, 5])
    with pytest.raises(ValueError, match='65 flows is more than the 64 panels'):
        plots.plot_flow(np.zeros((65, 4, 4, 2)), path)
    with pytest.raises(ValueError, match=r'flow_scale: flows must be \(T-1, H, W, 2\)'):
        plots.flow_scale(np.zeros((8, 8, 3)))
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
