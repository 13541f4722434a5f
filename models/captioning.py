"""captioning: video captioning with a clip encoder and an LSTM decoder (S2VT / "sequence to
sequence" in its simplest form).

    clip (N, 3, T, H, W) -> frames and frame differences (N*T, 6, H, W) -> small 2D CNN
        -> (N, T, D) per-frame features
        -> encoder nn.LSTM over the T frames -> its last hidden state (N, E): the clip feature
        -> two Linear + tanh -> (h_0, c_0) of the decoder
    tokens (N, L) = <bos> w_1 ... -> Embedding, beside the clip feature -> decoder nn.LSTM from
        (h_0, c_0) -> (N, L, hidden)
        -> Linear -> logits (N, L, vocab_size); logits[:, t] predict tokens[:, t + 1]

Why an LSTM over the frames rather than the mean of the frame features: a caption says what
happened first and what then ("a red square moves left then a blue circle appears"); a mean over
time would lose the order, and a single frame would lose the motion.  The decoder sees the clip
through its initial state and, beside each word, through the clip feature itself; it reads its
own previous words, so step t's
logits depend on tokens 0..t alone (causal), which is what teacher forcing needs.

Training is teacher forcing: the decoder reads the reference caption shifted right (it starts with
<bos>) and `caption_loss` is the cross entropy of each next token, <pad> positions ignored.  At test
time `greedy_decode` feeds back its own argmax; `beam_search` keeps the beam_size best partial
captions by total log-probability.  Both use only the model's `init_state(clip)` and
`step(tokens, state)`, so any decoder with those two methods can be searched.

This model is not in the model registry: the registry holds classifiers (clip -> class logits), and
this one maps (clip, tokens) to per-step vocabulary logits.
"""
import numpy as np

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn

from ._common import check_clip

__all__ = ['CaptioningModel', 'Clip3DEncoder', 'FrameLSTMEncoder', 'caption_loss', 'greedy_decode', 'beam_search']


class FrameLSTMEncoder(nn.Module):
    """A small per-frame 2D CNN, then an LSTM over the frames.

    forward(x): x (N, C, T, H, W) -> (clip feature (N, out_dim), frame features (N, T, frame_dim)).
    The CNN is two 3x3 conv + BatchNorm + ReLU + 2x2 max-pool stages on each frame and its change,
    an adaptive average pool to 4 x 4 (it keeps where things are, which a motion needs) and a
    Linear to frame_dim; the clip feature is the LSTM's last hidden state, so it depends on the
    order of the frames.

    frame_differences: the CNN sees each frame beside its difference from the previous frame
    (zero for the first), 2 * in_channels channels (default).  A caption binds each object to
    its half of the clip ("a red square moves left then ..."): the difference image shows which
    object is changing now, in its colour, and which way (a moving square's leading edge is
    positive, its trailing edge negative; a fade is all one sign), so the LSTM has only to remember
    when it saw what.  From frames alone it must find motion by comparing 4 x 4 grids of features
    across steps; on the synthetic captions that model stayed near the grammar-only loss (see
    examples/caption.py).
    batch_norm: a BatchNorm2d after each conv (default).  Without it the frame features of small
    objects on a flat background hardly vary from clip to clip at initialisation (on 32
    synthetic captioning clips the clip feature's spread over the batch was 0.004, against 0.07
    with it).
    stride: the first conv's stride; 2 on 32 x 32 frames does a quarter of the first conv's work
    and a quarter of the second's, at the price of half the resolution (an 8-pixel object still
    spans 4 cells)."""

    def __init__(self, in_channels=3, width=16, frame_dim=64, hidden_size=64, stride=1,
                 batch_norm=True, frame_differences=True):
        super().__init__()
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"FrameLSTMEncoder: stride must be a positive int, got {stride!r}")
        self.in_channels, self.frame_dim, self.out_dim = in_channels, frame_dim, hidden_size
        self.frame_differences = frame_differences
        cnn_channels = 2 * in_channels if frame_differences else in_channels
        self.conv1 = nn.Conv2d(cnn_channels, width, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        # a normalization after each conv, or identities (keeping forward one code path)
        self.norm1 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.grid = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(2 * width * 16, frame_dim)
        self.lstm = nn.LSTM(frame_dim, hidden_size, batch_first=True)

    def forward(self, x):
        check_clip('captioning encoder', x, channels=self.in_channels, min_size=4)
        N, C, T, H, W = x.shape
        if self.frame_differences:                # x_t - x_{t-1} beside x_t; 0 at t = 0
            change = x[:, :, 1:] - x[:, :, :-1]                         # (N, C, T - 1, H, W)
            change = tl.cat([tl.zeros(N, C, 1, H, W, dtype=x.dtype), change], 2)
            x = tl.cat([x, change], 1)                                  # (N, 2C, T, H, W)
            C = 2 * C
        frames = x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)       # (N*T, C, H, W)
        y = self.pool(F.relu(self.norm1(self.conv1(frames))))
        y = self.pool(F.relu(self.norm2(self.conv2(y))))
        y = self.grid(y).reshape(N * T, -1)                             # (N*T, 2w * 16)
        feats = F.relu(self.fc(y)).reshape(N, T, self.frame_dim)        # (N, T, frame_dim)
        out, _ = self.lstm(feats)                                       # (N, T, hidden)
        return out[:, -1], feats


class Clip3DEncoder(nn.Module):
    """A small 3D CNN with BatchNorm, pooled into per-event features.

    forward(x): x (N, C, T, H, W) -> (clip feature (N, out_dim), per-segment features
    (N, segments, channels)).  blocks (>= 2) of Conv3d 3x3x3 ('same' padding) + BatchNorm3d +
    ReLU + max-pool: the first block has width channels and pools 2 x 2 over space only (the first
    kernel sees full-rate motion), the others have `channels` channels and pool 2 x 2 x 2 over time
    and space (ceil mode: a short clip keeps at least one frame).  The map is then averaged into
    `segments` equal spans of time and over space (AdaptiveAvgPool3d((segments, 1, 1))), and a
    Linear + ReLU maps the concatenated spans to out_dim.

    Why 3D convolutions with BatchNorm: a caption names a direction of motion, which a 3 x 3 x 3
    kernel sees in neighbouring frames, while a per-frame 2D CNN leaves it to a recurrent layer
    comparing frames; BatchNorm keeps the responses to small objects on a flat background from
    starting out small and nearly alike (see FrameLSTMEncoder).  Why segments, not one average: a caption says what
    happened first and what then; the mean over time would lose the order, the span vectors keep
    it (segments=2 matches the two events of the synthetic captions, which fall in the two halves
    of the clip)."""

    def __init__(self, in_channels=3, width=16, channels=32, out_dim=64, blocks=4, segments=2,
                 batch_norm=True):
        super().__init__()
        for name, value in (('width', width), ('channels', channels), ('out_dim', out_dim),
                            ('segments', segments)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Clip3DEncoder: {name} must be a positive int, got {value!r}")
        if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 2:
            raise ValueError(f"Clip3DEncoder: blocks must be an int >= 2, got {blocks!r}")
        self.in_channels, self.out_dim, self.segments = in_channels, out_dim, segments
        layers, c_in = [], in_channels
        for b in range(blocks):
            c_out = width if b == 0 else channels
            layers += [nn.Conv3d(c_in, c_out, 3, padding=1),
                       nn.BatchNorm3d(c_out) if batch_norm else nn.Identity(), nn.ReLU(),
                       nn.MaxPool3d((1, 2, 2) if b == 0 else 2, ceil_mode=True)]
            c_in = c_out
        self.cnn = nn.Sequential(*layers)
        self.channels = c_in
        self.span = nn.AdaptiveAvgPool3d((segments, 1, 1))
        self.fc = nn.Linear(c_in * segments, out_dim)

    def forward(self, x):
        check_clip('captioning encoder', x, channels=self.in_channels, min_size=4)
        N = x.shape[0]
        spans = self.span(self.cnn(x)).reshape(N, self.channels, self.segments)  # (N, D, S)
        feature = F.relu(self.fc(spans.reshape(N, self.channels * self.segments)))  # (N, out)
        return feature, spans.permute(0, 2, 1)                                  # (N, S, D)


class CaptioningModel(nn.Module):
    """A clip encoder and an LSTM decoder initialised from the clip feature, which also reads
    that feature beside each word.

    CaptioningModel(vocab_size, embed_dim=32, hidden_size=64, encoder=None, pad_index=0)
      encoder: None for a FrameLSTMEncoder (width 16, frame_dim 64, hidden 64), or any Module
        with an `out_dim` attribute whose forward(clip) returns the clip feature (N, out_dim)
        (or a tuple whose first element it is).
    forward(clip, tokens): clip (N, C, T, H, W), tokens int64 (N, L) starting with <bos> ->
        logits (N, L, vocab_size), logits[:, t] scoring the token at t + 1 (teacher forcing).
    init_state(clip) -> (h, c, feature): h, c (N, hidden_size), feature (N, encoder.out_dim);
        step(tokens (N,), state) -> (log-probabilities (N, vocab_size), the next state): one
        decoding step, for the searches (which index every element of the state by beam).
    Why the decoder reads the clip feature at every step, not only through (h_0, c_0): with the
    initial state alone, examples/caption.py's training loss sat at the entropy of the grammar
    (about 0.69 nats per token: the words right, the colours, shapes and events guessed) after 250
    steps, and was 0.66 there with the feature beside each word (both before frame differences
    and the LayerNorm; lr 3e-3).  A path from the clip to every step's input is what S2VT and the
    "show and tell" variants with per-step image features have.
    Keys: encoder.*, feature_norm.*, init_h.*, init_c.*, embed.weight, decoder.weight_ih_l0 ...
    (nn.LSTM's), out.weight, out.bias."""

    def __init__(self, vocab_size, embed_dim=32, hidden_size=64, encoder=None, pad_index=0):
        super().__init__()
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.encoder = FrameLSTMEncoder() if encoder is None else encoder
        if not hasattr(self.encoder, 'out_dim'):
            raise TypeError(f"CaptioningModel: the encoder must have an `out_dim` attribute (the "
                            f"size of its clip feature), got {type(self.encoder).__name__}")
        # the clip feature rescaled to unit spread: it starts small next to the word embeddings it
        # sits beside, and the decoder would learn to ignore it.  A LayerNorm, not a BatchNorm: it
        # works on one clip in training mode too, and decodes a clip alone as in a batch.
        self.feature_norm = nn.LayerNorm(self.encoder.out_dim)
        self.init_h = nn.Linear(self.encoder.out_dim, hidden_size)
        self.init_c = nn.Linear(self.encoder.out_dim, hidden_size)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_index)
        self.decoder = nn.LSTM(embed_dim + self.encoder.out_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)

    def encode(self, clip):
        """clip (N, C, T, H, W) -> clip feature (N, encoder.out_dim), layer-normalised."""
        feature = self.encoder(clip)
        return self.feature_norm(feature[0] if isinstance(feature, tuple) else feature)

    def init_state(self, clip):
        """The decoder's initial state (h, c, feature): h, c (N, hidden_size) from the clip
        feature (N, encoder.out_dim), which rides along for the steps to read."""
        feature = self.encode(clip)
        return F.tanh(self.init_h(feature)), F.tanh(self.init_c(feature)), feature

    def _inputs(self, tokens, feature):
        """The decoder's inputs: each word's embedding beside the clip feature,
        (N, L, embed_dim + out_dim)."""
        words = self.embed(tokens)                                          # (N, L, embed)
        N, L = tokens.shape
        context = feature.unsqueeze(1).expand(N, L, feature.shape[1])       # (N, L, out_dim)
        return tl.cat([words, context], 2)

    def _check_tokens(self, tokens, n):
        t = tokens.data if isinstance(tokens, tl.Tensor) else np.asarray(tokens)
        if t.ndim != 2 or t.shape[0] != n or t.dtype.kind not in 'iu':
            raise ValueError(f"CaptioningModel: tokens must be int (N, L) = ({n}, L), got dtype "
                             f"{t.dtype} and shape {tuple(t.shape)}")
        if t.size and (t.min() < 0 or t.max() >= self.vocab_size):
            raise ValueError(f"CaptioningModel: token ids must be in 0..{self.vocab_size - 1}, "
                             f"got {int(t.min())}..{int(t.max())}")
        return tl.Tensor(t.astype(np.int64))

    def forward(self, clip, tokens):
        h, c, feature = self.init_state(clip)
        tokens = self._check_tokens(tokens, clip.shape[0])
        x = self._inputs(tokens, feature)                                   # (N, L, embed + E)
        out, _ = self.decoder(x, (h.unsqueeze(0), c.unsqueeze(0)))          # (N, L, hidden)
        return self.out(out)                                                # (N, L, vocab)

    def step(self, tokens, state):
        """One decoding step: tokens (N,) (the previous words) and state (h, c, feature) as
        init_state gives it -> (log-probabilities (N, vocab_size), the new (h, c, feature))."""
        h, c, feature = state
        tokens = self._check_tokens(np.asarray(tokens).reshape(-1, 1), h.shape[0])
        x = self._inputs(tokens, feature)                                   # (N, 1, embed + E)
        out, (h, c) = self.decoder(x, (h.unsqueeze(0), c.unsqueeze(0)))     # (N, 1, hidden)
        logits = self.out(out[:, 0])                                        # (N, vocab)
        return F.log_softmax(logits, 1), (h[0], c[0], feature)


def caption_loss(logits, tokens, pad_index=0):
    """Teacher-forcing cross entropy: logits (N, L, V) from forward(clip, tokens), tokens (N, L).
    The target of position t is tokens[:, t + 1]; the last position has no target, and <pad>
    targets are ignored (ignore_index), so the mean is over the real next tokens (<eos>
    included)."""
    t = tokens.data if isinstance(tokens, tl.Tensor) else np.asarray(tokens)
    if logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(t.shape):
        raise ValueError(f"caption_loss: logits (N, L, V) must match tokens (N, L), got logits "
                         f"{tuple(logits.shape)} and tokens {tuple(t.shape)}")
    N, L, V = logits.shape
    if L < 2:
        raise ValueError(f"caption_loss: need at least 2 tokens (<bos> and one target), got L={L}")
    scores = logits[:, :-1].reshape(N * (L - 1), V)                         # (N*(L-1), V)
    targets = t[:, 1:].reshape(-1).astype(np.int64)                          # (N*(L-1),)
    return F.cross_entropy(scores, targets, ignore_index=pad_index)


def _log_probs(x):
    return np.asarray(x.data if isinstance(x, tl.Tensor) else x, np.float64)


def greedy_decode(model, clip, bos, eos, max_len):
    """At each step feed back the most probable token (ties: the lowest id).  Returns, for each of
    the N clips, the list of generated token ids, <bos> not included, stopped at and including
    <eos> (or after max_len tokens if <eos> never came).  No gradient is recorded.  The model's
    mode is left alone: put a model with BatchNorm in eval mode first, or its statistics come from
    the batch being decoded."""
    with tl.no_grad():
        state = model.init_state(clip)
        N = clip.shape[0]
        prev = np.full(N, bos, np.int64)
        out, done = [[] for _ in range(N)], np.zeros(N, bool)
        for _ in range(max_len):
            logp, state = model.step(prev, state)
            prev = _log_probs(logp).argmax(1).astype(np.int64)
            for n in np.flatnonzero(~done):
                out[n].append(int(prev[n]))
            done |= prev == eos
            if done.all():
                break
    return out


def beam_search(model, clip, bos, eos, max_len, beam_size=3, length_penalty=0.0):
    """Beam search, one clip at a time: returns for each of the N clips the best token id list
    (<bos> not included, ending with <eos> unless max_len tokens came without one).

    A partial caption y_1..y_k is scored by the sum of its log-probabilities,
    log p(y_1..y_k | clip) = sum_i log p(y_i | y_<i, clip).  At each step every live caption is
    extended by every token, and the beam_size best extensions (by that sum; ties: the earlier
    caption, then the lower id) are kept; those that end in <eos> are finished and leave the beam,
    the others stay live.  The search stops when no caption is live or after max_len steps, and
    the winner among the finished captions (and the live ones, if max_len cut them) is the one with
    the best sum / length ** length_penalty, length counting <eos>: length_penalty=0 is the plain
    sum (which favours short captions), 1 the mean log-probability per token.
    With beam_size=1 and length_penalty=0 this is greedy_decode.  No gradient is recorded.  The
    clips are decoded one at a time: put a model with BatchNorm in eval mode first, or it
    normalises each clip with its own statistics (and differs from greedy_decode on a batch)."""
    if beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be >= 1, got {beam_size}")
    if max_len < 1:
        raise ValueError(f"beam_search: max_len must be >= 1, got {max_len}")
    results = []
    with tl.no_grad():
        for n in range(clip.shape[0]):
            state = model.init_state(clip[n:n + 1])
            beams, scores = [[]], np.zeros(1)               # live captions and their sums
            finished = []                                    # (tokens, sum)
            for _ in range(max_len):
                prev = np.array([b[-1] if b else bos for b in beams], np.int64)
                logp, state = model.step(prev, state)
                total = scores[:, None] + _log_probs(logp)   # (beams, V)
                V = total.shape[1]
                order = np.argsort(-total.reshape(-1), kind='stable')[:beam_size]
                keep, new_beams, new_scores = [], [], []
                for flat in order:
                    parent, token = divmod(int(flat), V)
                    caption = beams[parent] + [token]
                    if token == eos:
                        finished.append((caption, float(total[parent, token])))
                    else:
                        keep.append(parent)
                        new_beams.append(caption)
                        new_scores.append(total[parent, token])
                if not new_beams:
                    break
                # the surviving captions carry their parents' decoder states
                index = np.array(keep, np.int64)
                state = tuple(s[index] for s in state)
                beams, scores = new_beams, np.array(new_scores)
            else:
                finished.extend(zip(beams, scores.tolist()))  # cut by max_len, still live
            best = max(finished, key=lambda cs: cs[1] / len(cs[0]) ** length_penalty)
            results.append(best[0])
    return results
