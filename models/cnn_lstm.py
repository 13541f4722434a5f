"""cnn_lstm: LRCN (Donahue et al. 2015) -- a 2D CNN per frame, an LSTM over the frame features.

The video-with-RNN shape of the lesson: each frame becomes a feature vector, and a recurrent
network reads them in order, so the prediction can depend on what happened when.

    clip (N, 3, T, H, W) -> frames (N*T, 3, H, W) -> FrameCNN (conv stage, fc6) -> (N*T, D)
        -> (N, T, D) -> nn.LSTM (batch first) -> (N, T, hidden)
        readout 'last' (default): the output at the last step (N, hidden)
        readout 'mean': the mean of the outputs over the T steps (N, hidden)
        -> dropout -> fc8 -> (N, num_classes)

LRCN applies fc8 at every step and averages the per-step class probabilities at test time;
'mean' averages the LSTM outputs before fc8 instead (the same as averaging per-step logits, fc8
being linear).  With 'last' the classifier reads the state after the whole clip.

What it sees in time: everything, in order -- the LSTM's state depends on the sequence of frame
features, so a clip and its reverse generally get different logits (the synthetic 'order' family
is its home ground).  Motion only as far as the per-frame features locate things: the frame CNN
sees no motion itself, so the tiny net flattens a 4 x 4 map (keeps where the object is) instead
of pooling it away.  Any T works.

Presets: 'paper' is LRCN-fc6 (lisa-caffe-public LRCN_activity_recognition): the CaffeNet/ZF hybrid
on 227 x 227 frames up to fc6 (4096, ReLU, dropout 0.9), one LSTM layer of 256, dropout 0.5,
fc8: 65,422,309 parameters with 101 classes and nn.LSTM's two biases (65,421,285 with Caffe's one;
REFERENCES.md section 6); trained on 16-frame clips.  'tiny': cnn2d's tiny net (fc6 64) and an LSTM
of 64 on 32 x 32 frames.
Keys: `cnn.conv1.weight`, ..., `cnn.fc6.bias` (Caffe names), `lstm.weight_ih_l0`,
`lstm.weight_hh_l0`, `lstm.bias_ih_l0`, `lstm.bias_hh_l0` (PyTorch's nn.LSTM), `fc8.weight`,
`fc8.bias`.
"""
import tensorlite.nn as nn

from ._common import check_clip
from .cnn2d import frame_cnn
from .registry import register_model

READOUTS = ('last', 'mean')


class CNNLSTM(nn.Module):
    """Per-frame 2D CNN features into nn.LSTM, a classifier on the last output (or the mean over
    steps).  forward(x): x (N, C, T, H, W) -> logits (N, num_classes)."""

    name = 'cnn_lstm'

    def __init__(self, cnn, num_classes, hidden_size=256, readout='last', dropout=0.5):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"cnn_lstm: readout must be one of {READOUTS}, got {readout!r}")
        self.cnn = cnn
        self.lstm = nn.LSTM(cnn.out_dim, hidden_size, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.fc8 = nn.Linear(hidden_size, num_classes)
        self.readout = readout

    def forward(self, x):
        C, S = self.cnn.in_channels, self.cnn.input_size
        check_clip(self.name, x, channels=C, size=S)
        N, _, T, H, W = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)   # (N*T, C, H, W), clip-major
        feats = self.cnn(frames).reshape(N, T, -1)                   # (N, T, D)
        out, _ = self.lstm(feats)                                    # (N, T, hidden)
        h = out[:, -1] if self.readout == 'last' else out.mean(dim=1)  # (N, hidden)
        return self.fc8(self.drop(h))                                # (N, num_classes)


def _cnn_lstm(num_classes, preset, readout, hidden_size=None, lstm_dropout=None, **overrides):
    tiny = preset == 'tiny'
    cnn = frame_cnn('tiny' if tiny else 'caffenet_zf', **overrides)
    hidden_size = (64 if tiny else 256) if hidden_size is None else hidden_size
    lstm_dropout = (0.0 if tiny else 0.5) if lstm_dropout is None else lstm_dropout
    return CNNLSTM(cnn, num_classes, hidden_size, readout, lstm_dropout)


def _clip(frames, size):
    return {'input_size': size}                      # fc6 reads a map of the frame size; any T


# paper: LRCN-fc6 on UCF101 (101 classes), 16-frame clips of 227 x 227 (REFERENCES.md section 6)
@register_model('cnn_lstm', paper_num_classes=101, paper_clip=(16, 227), clip_arguments=_clip)
def cnn_lstm(num_classes, preset='tiny', readout='last', **overrides):
    """LRCN: classifier on the LSTM's last output (readout='mean' to average over steps).
    Overrides: hidden_size (64 tiny, 256 paper), lstm_dropout (0 tiny, 0.5 paper), and
    cnn2d.frame_cnn options (input_size, fc_dims, dropout, widths, ...)."""
    return _cnn_lstm(num_classes, preset, readout, **overrides)


@register_model('cnn_lstm_mean', paper_num_classes=101, paper_clip=(16, 227),
                clip_arguments=_clip)
def cnn_lstm_mean(num_classes, preset='tiny', **overrides):
    """LRCN with the classifier on the mean of the LSTM outputs over the T steps."""
    return _cnn_lstm(num_classes, preset, 'mean', **overrides)
