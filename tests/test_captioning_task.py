"""Video captioning (models/captioning.py): teacher-forcing shapes and causality, the decoding step
agreeing with forward, greedy == beam search of width 1, beam search beating a myopic greedy on a
hand-built decoder, and a short training run on the synthetic captioning family."""
import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.data.synthetic import SyntheticActions
from tensorlite.models.captioning import (CaptioningModel, Clip3DEncoder, FrameLSTMEncoder,
                                          beam_search, caption_loss, greedy_decode)
from tensorlite.optim import Adam
from tensorlite.train.bleu import corpus_bleu

PAD, BOS, EOS = 0, 1, 2


def small_model(vocab_size, seed=0):
    tl.random.manual_seed(seed)
    encoder = FrameLSTMEncoder(width=8, frame_dim=32, hidden_size=32)
    return CaptioningModel(vocab_size, embed_dim=16, hidden_size=32, encoder=encoder)


def random_batch(rng, n=2, frames=4, size=16, vocab=11, length=6):
    clip = tl.tensor(rng.random((n, 3, frames, size, size), dtype=np.float32))
    tokens = rng.integers(3, vocab, (n, length))
    tokens[:, 0] = BOS
    return clip, tokens


def test_forward_shapes_and_loss(rng):
    model = small_model(11)
    clip, tokens = random_batch(rng, n=3, length=7)
    logits = model(clip, tokens)
    assert logits.shape == (3, 7, 11)
    loss = caption_loss(logits, tokens)
    assert loss.shape == () and np.isfinite(loss.data)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.data).all(), name


@pytest.mark.parametrize('frames, size', [(1, 16), (4, 16), (16, 32), (7, 20)])
def test_clip3d_encoder_shapes(rng, frames, size):
    encoder = Clip3DEncoder(width=4, channels=8, out_dim=12, segments=2)
    x = tl.tensor(rng.random((3, 3, frames, size, size), dtype=np.float32))
    feature, spans = encoder(x)
    assert feature.shape == (3, 12) and spans.shape == (3, 2, 8)
    assert feature.dtype == np.float32


@pytest.mark.parametrize('kwargs, match', [
    (dict(blocks=1), r'blocks must be an int >= 2, got 1'),
    (dict(segments=0), r'segments must be a positive int, got 0'),
    (dict(width=2.5), r'width must be a positive int, got 2.5'),
])
def test_clip3d_encoder_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Clip3DEncoder(**kwargs)


def test_clip3d_encoder_names_a_wrong_clip():
    with pytest.raises(ValueError, match=r'expected 3 channels.*\(2, 1, 4, 16, 16\)'):
        Clip3DEncoder()(tl.zeros(2, 1, 4, 16, 16))


def test_captioning_model_with_the_3d_encoder(rng):
    """Every parameter gets a gradient, and step() reproduces forward() (eval mode, so that
    BatchNorm uses the same statistics on both paths)."""
    tl.random.manual_seed(0)
    model = CaptioningModel(11, embed_dim=16, hidden_size=32,
                            encoder=Clip3DEncoder(width=4, channels=8, out_dim=16))
    clip, tokens = random_batch(rng, n=3, frames=8, length=6)
    caption_loss(model(clip, tokens), tokens).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad.data).sum() > 0, name
    model.eval()
    expected = F.log_softmax(model(clip, tokens), 2).data
    state = model.init_state(clip)
    for t in range(tokens.shape[1]):
        logp, state = model.step(tokens[:, t], state)
        np.testing.assert_allclose(logp.data, expected[:, t], rtol=1e-4, atol=1e-5)


def test_caption_loss_is_next_token_cross_entropy_ignoring_pad(rng):
    logits = tl.tensor(rng.standard_normal((2, 4, 5)).astype(np.float32))
    tokens = np.array([[BOS, 3, EOS, PAD], [BOS, 4, 3, EOS]])
    logp = logits.data - np.log(np.exp(logits.data).sum(-1, keepdims=True))
    # targets: row 0 -> 3, EOS (PAD skipped); row 1 -> 4, 3, EOS; the last position has none
    picked = [logp[0, 0, 3], logp[0, 1, EOS], logp[1, 0, 4], logp[1, 1, 3], logp[1, 2, EOS]]
    expected = -np.mean(picked)
    np.testing.assert_allclose(caption_loss(logits, tokens).data, expected, rtol=1e-5)


def test_bad_tokens_raise(rng):
    model = small_model(11)
    clip, tokens = random_batch(rng)
    with pytest.raises(ValueError, match=r'tokens must be int \(N, L\)'):
        model(clip, tokens[0])
    with pytest.raises(ValueError, match=r'0\.\.10'):
        model(clip, tokens + 20)
    with pytest.raises(ValueError, match='expected a batch of clips'):
        model(clip[0], tokens)


@pytest.mark.parametrize('k', [1, 3, 5])
def test_teacher_forcing_is_causal(rng, k):
    """Changing token k changes the logits at k and after, never before."""
    model = small_model(11)
    clip, tokens = random_batch(rng, length=7)
    before = model(clip, tokens).data
    changed = tokens.copy()
    changed[:, k] = 3 + (changed[:, k] - 3 + 1) % 8          # another word
    after = model(clip, changed).data
    np.testing.assert_array_equal(after[:, :k], before[:, :k])
    assert np.abs(after[:, k] - before[:, k]).max() > 1e-6


def test_step_by_step_decoding_matches_forward(rng):
    """The searches' step() is the same network as forward(): feeding the tokens one at a time
    gives forward's log-probabilities at every position."""
    model = small_model(11)
    clip, tokens = random_batch(rng, length=6)
    expected = F.log_softmax(model(clip, tokens), 2).data
    state = model.init_state(clip)
    for t in range(tokens.shape[1]):
        logp, state = model.step(tokens[:, t], state)
        np.testing.assert_allclose(logp.data, expected[:, t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_greedy_equals_beam_search_of_width_one(rng, seed):
    model = small_model(11, seed)
    # a large bias on <eos> makes some captions end early, the rest run to max_len
    model.out.bias.data[EOS] += 2.0 * seed
    clip, _ = random_batch(rng, n=3)
    greedy = greedy_decode(model, clip, BOS, EOS, max_len=8)
    assert greedy == beam_search(model, clip, BOS, EOS, max_len=8, beam_size=1)
    for caption in greedy:
        assert 1 <= len(caption) <= 8
        assert EOS not in caption[:-1]


class TableDecoder:
    """A hand-built decoder: the next token's probability depends only on the previous token.
    Vocabulary: 0 <pad>, 1 <bos>, 2 <eos>, 3 'A', 4 'B'.  From <bos>, A (0.5) beats B (0.4), but
    after A the caption is uncertain (<eos> 0.4) while after B it surely ends (<eos> 0.9): greedy
    takes A then <eos> (0.5 * 0.4 = 0.20); B then <eos> is more probable (0.4 * 0.9 = 0.36)."""

    table = np.array([[0.2, 0.2, 0.2, 0.2, 0.2],      # after <pad> (unused)
                      [0.0, 0.0, 0.1, 0.5, 0.4],      # after <bos>
                      [0.2, 0.2, 0.2, 0.2, 0.2],      # after <eos> (unused)
                      [0.0, 0.0, 0.4, 0.3, 0.3],      # after A
                      [0.0, 0.0, 0.9, 0.05, 0.05]])   # after B

    def init_state(self, clip):
        return (tl.zeros(clip.shape[0], 1),)          # no memory; only its batch size matters

    def step(self, tokens, state):
        with np.errstate(divide='ignore'):
            return tl.tensor(np.log(self.table[np.asarray(tokens)])), state

    def log_prob(self, caption):
        tokens = [BOS] + caption
        return sum(math.log(self.table[a, b]) for a, b in zip(tokens, tokens[1:]))


def test_beam_search_beats_myopic_greedy_on_a_hand_built_decoder():
    decoder, clip = TableDecoder(), tl.zeros(2, 3, 4, 16, 16)
    greedy = greedy_decode(decoder, clip, BOS, EOS, max_len=5)
    beam = beam_search(decoder, clip, BOS, EOS, max_len=5, beam_size=2)
    assert greedy == [[3, EOS]] * 2
    assert beam == [[4, EOS]] * 2
    assert decoder.log_prob(beam[0]) > decoder.log_prob(greedy[0])
    np.testing.assert_allclose(math.exp(decoder.log_prob(beam[0])), 0.36)


class StatefulDecoder:
    """A hand-built decoder that remembers: its state holds (first word, words so far), and the
    next word's probabilities depend on them, not on the token fed in.  A search that hands a beam
    another beam's state scores that beam with the wrong probabilities.

        first word:            <eos> 0.1, A 0.5, B 0.4
        second, after A ...:   <eos> 0.6, A 0.4          after B ...: <eos> 0.2, B 0.8
        third,  after A ...:   <eos> 0.5, A 0.5          after B ...: <eos> 1.0

    Greedy: A, <eos> (0.5 * 0.6 = 0.30).  Beam of 2: after two steps it keeps B B (0.32, the
    second beam's child) and finishes A <eos> (0.30); B B <eos> then has 0.32, the best caption.
    Had B B been given A's state, B B <eos> would get 0.16 and A <eos> would win."""

    def __init__(self):
        row = lambda eos=0.0, a=0.0, b=0.0: np.array([0.0, 0.0, eos, a, b])   # noqa: E731
        self.first = row(0.1, 0.5, 0.4)
        self.second = {3: row(eos=0.6, a=0.4), 4: row(eos=0.2, b=0.8)}
        self.third = {3: row(eos=0.5, a=0.5), 4: row(eos=1.0)}

    def init_state(self, clip):
        return (tl.tensor(np.tile(np.float32([-1, 0]), (clip.shape[0], 1))),)   # (first, count)

    def step(self, tokens, state):
        tokens, (first, count) = np.asarray(tokens), state[0].data.astype(np.int64).T
        word = tokens != BOS
        first = np.where((first < 0) & word, tokens, first)
        count = count + word
        rows = [self.first if n == 0 else (self.second if n == 1 else self.third)[f]
                for f, n in zip(first, count)]
        with np.errstate(divide='ignore'):
            logp = tl.tensor(np.log(np.stack(rows)))
        return logp, (tl.tensor(np.stack([first, count], 1).astype(np.float32)),)


def test_beam_search_carries_each_beams_own_state():
    decoder, clip = StatefulDecoder(), tl.zeros(2, 3, 4, 16, 16)
    assert greedy_decode(decoder, clip, BOS, EOS, max_len=5) == [[3, EOS]] * 2
    assert beam_search(decoder, clip, BOS, EOS, max_len=5, beam_size=2) == [[4, 4, EOS]] * 2


def test_length_penalty_can_prefer_a_longer_caption():
    """Plain sums favour short captions; length_penalty=1 ranks by log-probability per token."""

    class Decoder(TableDecoder):
        table = np.array([[0.2, 0.2, 0.2, 0.2, 0.2],
                          [0.0, 0.0, 0.4, 0.6, 0.0],  # after <bos>: <eos> 0.4, A 0.6
                          [0.2, 0.2, 0.2, 0.2, 0.2],
                          [0.0, 0.0, 0.5, 0.5, 0.0],  # after A: <eos> 0.5, A 0.5
                          [0.2, 0.2, 0.2, 0.2, 0.2]])

    decoder, clip = Decoder(), tl.zeros(1, 3, 4, 16, 16)
    # plain sum: [<eos>] 0.4 beats [A, <eos>] 0.3 and anything longer
    assert beam_search(decoder, clip, BOS, EOS, max_len=6, beam_size=3) == [[EOS]]
    # per token: [<eos>] log 0.4 = -0.92; [A, <eos>] (log 0.6 + log 0.5) / 2 = -0.60, the best
    # ([A, A, <eos>] -0.63, longer ones tend to log 0.5 = -0.69, [A] * 6 cut by max_len -0.66)
    assert beam_search(decoder, clip, BOS, EOS, max_len=6, beam_size=3,
                       length_penalty=1.0) == [[3, EOS]]


def test_wide_beam_search_is_exhaustive(rng):
    """With a beam as wide as every partial caption (5 ** 2 = 25 for max_len 3) beam search is an
    exhaustive search: it must return the most probable caption of all, scored here independently
    by teacher forcing.  This checks that the surviving beams carry their own decoder states."""
    import itertools
    V, max_len = 5, 3
    model = small_model(V, seed=3)
    # <eos> made improbable, so that the best caption is a long one, whose later words depend on
    # the decoder state (made stronger) that the search must carry along each beam
    model.out.bias.data[EOS] -= 20.0
    model.decoder.weight_hh_l0.data *= 4.0
    model.out.weight.data *= 4.0
    clip, _ = random_batch(rng, n=1)
    candidates = []
    for length in range(1, max_len + 1):
        for words in itertools.product(range(V), repeat=length):
            if EOS in words[:-1] or (length < max_len and words[-1] != EOS):
                continue
            candidates.append(list(words))
    scores = []
    for caption in candidates:
        tokens = np.array([[BOS] + caption])
        logp = F.log_softmax(model(clip, tokens), 2).data[0]
        scores.append(sum(logp[t, w] for t, w in enumerate(caption)))
    best = candidates[int(np.argmax(scores))]
    assert beam_search(model, clip, BOS, EOS, max_len=max_len, beam_size=V ** 2) == [best]


def test_beam_search_argument_errors():
    decoder, clip = TableDecoder(), tl.zeros(1, 3, 4, 16, 16)
    with pytest.raises(ValueError, match='beam_size must be >= 1'):
        beam_search(decoder, clip, BOS, EOS, max_len=5, beam_size=0)
    with pytest.raises(ValueError, match='max_len must be >= 1'):
        beam_search(decoder, clip, BOS, EOS, max_len=0)


def test_short_training_run_reduces_the_loss_and_decodes():
    """40 Adam steps on 32 synthetic captioning clips (8 frames of 16 x 16).  The initial loss is
    about log(vocab) = log 19 = 2.94; the grammar alone ('a' first, 'then' in the middle, a
    colour after 'a', ...) is worth more than half of it, so a model that learns anything ends
    well below 0.6 x the start."""
    data = SyntheticActions('captioning', 32, num_frames=8, size=16, seed=0)
    clips, captions = data.batch(np.arange(32))
    tokens = np.stack([data.encode(c, data.max_caption_len) for c in captions])
    model = small_model(len(data.vocab))
    optimizer = Adam(model.parameters(), lr=1e-2)
    clip = tl.tensor(clips)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = caption_loss(model(clip, tokens), tokens)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.data))
    assert abs(losses[0] - math.log(len(data.vocab))) < 0.5
    assert losses[-1] < 0.6 * losses[0], losses
    decoded = greedy_decode(model, clip[:8], BOS, EOS, max_len=data.max_caption_len)
    hypotheses = [data.decode(ids) for ids in decoded]
    scores = corpus_bleu([[c] for c in captions[:8]], hypotheses)
    assert all(0.0 <= scores[f'BLEU-{n}'] <= 1.0 for n in range(1, 5))
