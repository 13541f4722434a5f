"""Evaluation metrics: classification (top-k, mean class accuracy, confusion matrix, multi-clip
averaging), temporal localization (tIoU, grouping, NMS, ActivityNet mAP) and corpus BLEU.

Expected numbers are derived by hand in the comments. The `optional` tests compare BLEU with nltk and
sacrebleu when they are installed, and are skipped otherwise.
"""
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.train.bleu import corpus_bleu
from tensorlite.train.localization import (average_precision, interpolated_average_precision,
                                           mean_average_precision, segments_from_scores,
                                           temporal_iou, temporal_nms)
from tensorlite.train.metrics import (accuracy, average_clip_scores, confusion_matrix,
                                      mean_class_accuracy)

# ---- classification --------------------------------------------------------------------------


SCORES = np.array([[0.1, 0.7, 0.2],      # true 1: top-1 hit
                   [0.5, 0.3, 0.2],      # true 1: rank 2
                   [0.2, 0.3, 0.5],      # true 0: rank 3
                   [0.3, 0.3, 0.4]])     # true 1: class 2 first, then the tie 0/1 -> 0 first -> rank 3
LABELS = np.array([1, 1, 0, 1])


def test_accuracy_topk_by_hand():
    # top-1: only row 0 -> 1/4; top-2: rows 0, 1 -> 2/4; top-3: all -> 1
    assert accuracy(SCORES, LABELS, topk=(1, 2, 3)) == (0.25, 0.5, 1.0)
    assert accuracy(SCORES, LABELS, topk=1) == 0.25
    assert accuracy(tl.tensor(SCORES), tl.tensor(LABELS), topk=(2,)) == (0.5,)


def test_accuracy_ties_go_to_the_lower_class_index():
    constant = np.zeros((3, 4))
    assert accuracy(constant, [0, 1, 3], topk=(1, 2)) == (1 / 3, 2 / 3)
    # 50 classes in 5 tied blocks of 10 (an unstable sort scrambles ties past 16 elements):
    # classes 40..49 share the top score and rank first in index order, so class 46 is 7th:
    # in the top 7, not in the top 6
    scores = np.repeat(np.arange(5.0), 10)[None]
    assert accuracy(scores, [46], topk=(6, 7)) == (0.0, 1.0)


def test_accuracy_matches_argmax_on_random_scores(rng):
    scores = rng.standard_normal((50, 7))
    labels = rng.integers(0, 7, 50)
    assert accuracy(scores, labels) == pytest.approx(np.mean(scores.argmax(1) == labels))
    assert accuracy(scores, labels, topk=7) == 1.0


@pytest.mark.parametrize('scores, labels, topk, message', [
    (np.zeros((2, 3, 1)), [0, 1], 1, r'\(N, C\)'),
    (np.zeros((2, 3)), [0, 1, 2], 1, r'shape \(2,\)'),
    (np.zeros((2, 3)), [0, 3], 1, r'\[0, 3\)'),
    (np.zeros((2, 3)), [0, 1], 4, r'topk'),
    (np.zeros((0, 3)), [], 1, 'empty'),
])
def test_accuracy_rejects_bad_input(scores, labels, topk, message):
    with pytest.raises(ValueError, match=message):
        accuracy(scores, labels, topk=topk)


def test_confusion_matrix_and_mean_class_accuracy_by_hand():
    pred = np.array([0, 0, 1, 1, 1, 2, 0])
    labels = np.array([0, 1, 1, 1, 2, 2, 0])
    # rows true, columns predicted: class 0 -> (0, 0) twice; class 1 -> 0 once, 1 twice;
    # class 2 -> 1 once, 2 once; class 3 never appears
    expected = np.array([[2, 0, 0, 0],
                         [1, 2, 0, 0],
                         [0, 1, 1, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(pred, labels, num_classes=4), expected)
    # recall: class 0 2/2, class 1 2/3, class 2 1/2; class 3 absent -> mean of three
    assert mean_class_accuracy(pred, labels, num_classes=4) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    # plain accuracy weights samples instead: 5/7
    assert np.trace(expected) / expected.sum() == pytest.approx(5 / 7)


def test_confusion_matrix_from_scores_uses_argmax_and_infers_size():
    cm = confusion_matrix(SCORES, LABELS)       # argmax rows: 1, 0, 2, 2
    np.testing.assert_array_equal(cm, [[0, 0, 1], [1, 1, 1], [0, 0, 0]])
    assert confusion_matrix([2, 0], [1, 0]).shape == (3, 3)


def test_average_clip_scores_probabilities_versus_logits():
    # video 0, two views over 2 classes: a confident view for class 0 and a mild one for class 1
    scores = np.array([[[10.0, 0.0], [0.0, 1.0]]])
    # raw mean: [5, 0.5] -> class 0
    np.testing.assert_allclose(average_clip_scores(scores, on='logits'), [[5.0, 0.5]])
    # probabilities: view 0 ~ [1, 4.5e-5], view 1 = [1/(1+e), e/(1+e)] = [0.2689, 0.7311]
    p0 = np.array([1.0, math.exp(-10)]) / (1 + math.exp(-10))
    p1 = np.array([1.0, math.e]) / (1 + math.e)
    np.testing.assert_allclose(average_clip_scores(scores), [(p0 + p1) / 2], rtol=1e-12)
    np.testing.assert_allclose(average_clip_scores(scores, reduce='max'), [np.maximum(p0, p1)])
    np.testing.assert_allclose(average_clip_scores(scores).sum(axis=1), [1.0])


def test_average_clip_scores_shapes_and_errors(rng):
    scores = rng.standard_normal((4, 6, 5)).astype(np.float32)
    out = average_clip_scores(tl.tensor(scores))
    assert out.shape == (4, 5) and out.dtype == np.float32
    with pytest.raises(ValueError, match=r'\(N, K, C\)'):
        average_clip_scores(scores[0])
    with pytest.raises(ValueError, match="'probabilities' or 'logits'"):
        average_clip_scores(scores, on='probs')
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        average_clip_scores(scores, reduce='sum')


# ---- temporal localization -------------------------------------------------------------------


def test_temporal_iou_by_hand():
    segments = np.array([[0, 10], [5, 15], [10, 20], [2, 4], [20, 30]])
    # [0,10) with: itself 1; [5,15) 5/15; [10,20) touches: 0; [2,4) 2/10; disjoint 0
    np.testing.assert_allclose(temporal_iou((0, 10), segments), [1, 1 / 3, 0, 0.2, 0])
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(1 / 3)
    assert temporal_iou((3, 3), (3, 3)) == 0.0
    with pytest.raises(ValueError, match='end >= start'):
        temporal_iou((5, 1), segments)


def test_segments_from_scores_groups_runs_end_exclusive():
    # frames:             0    1    2    3    4    5    6    7
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.2, 0.7], [0.6, 0.4],
                       [0.5, 0.2], [0.9, 0.3], [0.8, 0.6]])
    # class 0 > 0.5: frames 0 and 4 (0.6); frame 5 is 0.5, not above; frames 6-7
    # class 1 > 0.5: frames 1-3 and 7
    got = segments_from_scores(scores, threshold=0.5)
    expected = [(0, 1, 0, 0.9), (1, 4, 1, 0.8), (4, 5, 0, 0.6), (6, 8, 0, 0.85), (7, 8, 1, 0.6)]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    np.testing.assert_allclose([g[3] for g in got], [e[3] for e in expected])
    # min_length 2 drops the single frames; ignore_index drops class 0
    assert [g[:3] for g in segments_from_scores(scores, 0.5, min_length=2)] == [(1, 4, 1), (6, 8, 0)]
    assert [g[:3] for g in segments_from_scores(scores, 0.5, ignore_index=0)] == [(1, 4, 1), (7, 8, 1)]
    # 1-D scores are one class
    assert segments_from_scores(np.array([0.0, 1.0, 1.0]), 0.5) == [(1, 3, 0, 1.0)]


def test_temporal_nms_by_hand():
    segments = [(0, 10, 0, 0.9),     # kept
                (1, 10, 0, 0.8),     # tIoU 0.9 with the first: suppressed
                (5, 15, 0, 0.7),     # tIoU 1/3 with the first: kept at threshold 0.5
                (1, 10, 1, 0.6),     # another class: kept
                (6, 15, 0, 0.5)]     # tIoU 0.9 with (5, 15): suppressed
    assert temporal_nms(segments, 0.5) == [segments[0], segments[2], segments[3]]
    # a tIoU equal to the threshold is not above it: (5, 15) survives at 1/3 exactly
    assert segments[2] in temporal_nms(segments, 1 / 3)
    assert segments[2] not in temporal_nms(segments, 0.3)
    # with video ids, suppression stays within a video
    in_videos = [('a', 0, 10, 0, 0.9), ('b', 0, 10, 0, 0.8), ('a', 0, 9, 0, 0.7)]
    assert temporal_nms(in_videos, 0.5) == in_videos[:2]


def test_interpolated_average_precision_by_hand():
    # ranks FP, TP, TP with 2 positives: precision 0, 1/2, 2/3; recall 0, 1/2, 1.
    # Interpolated: at recall 1/2 the best precision at recall >= 1/2 is 2/3; at recall 1 it is 2/3.
    # AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3 (the non-interpolated sum would be (1/2 + 2/3) / 2 = 7/12)
    assert interpolated_average_precision([0, 1 / 2, 2 / 3], [0, 1 / 2, 1]) == pytest.approx(2 / 3)
    # recall stopping at 1/2: the last step (1/2 -> 1) gets precision 0
    assert interpolated_average_precision([1.0], [0.5]) == pytest.approx(0.5)


# A small benchmark worked out by hand. Class 'a' has three ground-truth segments, class 'b' one.
GROUND_TRUTH = [('v1', 0, 10, 'a'), ('v1', 20, 30, 'a'), ('v2', 0, 10, 'a'), ('v2', 30, 40, 'b')]
PREDICTIONS = [
    ('v1', 0, 10, 'a', 0.9),     # p1: tIoU 1 with v1[0,10): TP at every threshold
    ('v1', 1, 10, 'a', 0.8),     # p2: tIoU 0.9 with v1[0,10), already taken; 0 with the other: FP
    ('v2', 2, 10, 'a', 0.7),     # p3: tIoU 8/10 with v2[0,10): TP at 0.3, 0.5, 0.7
    ('v1', 20, 26, 'a', 0.6),    # p4: tIoU 6/10 with v1[20,30): TP at 0.3, 0.5; FP at 0.7
    ('v3', 0, 5, 'a', 0.5),      # p5: no ground truth in v3: FP
    ('v1', 20, 29, 'a', 0.4),    # p6: tIoU 0.9 with v1[20,30): taken by p4 at 0.3, 0.5 -> FP; free at 0.7 -> TP
    ('v2', 0, 10, 'b', 0.95),    # q1: class b, tIoU 0 with v2[30,40) (the 'a' segment does not count): FP
    ('v2', 30, 40, 'b', 0.3),    # q2: TP
    ('v1', 0, 10, 'b', 0.1),     # q3: no 'b' in v1: FP
    ('v1', 0, 10, 'c', 0.99),    # class c has no ground truth: ignored
]
# Class a at 0.3 and 0.5: TP, FP, TP, TP, FP, FP with 3 positives
#   precision 1, 1/2, 2/3, 3/4, 3/5, 1/2; recall 1/3, 1/3, 2/3, 1, 1, 1
#   interpolated precision at the recall steps 0->1/3: 1, 1/3->2/3: 3/4, 2/3->1: 3/4
#   AP = 1/3 * (1 + 3/4 + 3/4) = 5/6
# Class a at 0.7: TP, FP, TP, FP, FP, TP
#   precision 1, 1/2, 2/3, 1/2, 2/5, 1/2; recall 1/3, 1/3, 2/3, 2/3, 2/3, 1
#   interpolated at the steps: 1, 2/3, 1/2 -> AP = 1/3 * (1 + 2/3 + 1/2) = 13/18
# Class b: FP, TP, FP with 1 positive: precision 0, 1/2, 1/3; recall 0, 1, 1 -> AP = 1 * 1/2 = 1/2
AP_A = {0.3: 5 / 6, 0.5: 5 / 6, 0.7: 13 / 18}


def test_mean_average_precision_by_hand():
    result = mean_average_precision(PREDICTIONS, GROUND_TRUTH)
    for t in (0.3, 0.5, 0.7):
        assert result['AP'][t]['a'] == pytest.approx(AP_A[t])
        assert result['AP'][t]['b'] == pytest.approx(0.5)
        assert set(result['AP'][t]) == {'a', 'b'}
        assert result['mAP'][t] == pytest.approx((AP_A[t] + 0.5) / 2)
    # mAP 2/3, 2/3, 11/18 -> mean 35/54
    assert result['average_mAP'] == pytest.approx(35 / 54)


def test_average_precision_one_class_and_order_independence(rng):
    class_a = [p for p in PREDICTIONS if p[3] == 'a']
    ap = average_precision(class_a, [g for g in GROUND_TRUTH if g[3] == 'a'])
    np.testing.assert_allclose(ap, [5 / 6, 5 / 6, 13 / 18])
    shuffled = [PREDICTIONS[i] for i in rng.permutation(len(PREDICTIONS))]
    assert mean_average_precision(shuffled, GROUND_TRUTH[::-1]) == mean_average_precision(
        PREDICTIONS, GROUND_TRUTH)
    with pytest.raises(ValueError, match='one class'):
        average_precision(PREDICTIONS, GROUND_TRUTH)


def test_matching_takes_the_best_free_ground_truth_and_the_threshold_is_inclusive():
    # The first prediction overlaps both ground truths (tIoU 1/3 and 2/3, both >= 0.3): it must take
    # the higher, [5,20), leaving [0,10) free for the second. Taking [0,10) instead would leave the
    # second prediction only [5,20) at tIoU 5/20 < 0.3: a false positive, AP 1/2 * 1 + ... < 1.
    gt = [('v', 0, 10, 0), ('v', 5, 20, 0)]
    preds = [('v', 5, 15, 0, 0.9),    # tIoU with [0,10): 5/15; with [5,20): 10/15 -> takes [5,20)
             ('v', 0, 10, 0, 0.8)]    # tIoU 1 with [0,10): TP
    np.testing.assert_allclose(average_precision(preds, gt, tiou_thresholds=0.3), [1.0])
    # tIoU exactly at the threshold matches (ActivityNet: >=)
    assert average_precision([('v', 0, 5, 0, 1.0)], [('v', 0, 10, 0)], tiou_thresholds=0.5)[0] == 1.0
    # the best ground truth is taken already: the next free one above the threshold is matched
    # ([1,10) has tIoU 9/10 with the taken [0,10), 8/11 with the free [2,12)) -> AP 1
    gt = [('v', 0, 10, 0), ('v', 2, 12, 0)]
    preds = [('v', 0, 10, 0, 0.9), ('v', 1, 10, 0, 0.8)]
    np.testing.assert_allclose(average_precision(preds, gt, tiou_thresholds=0.5), [1.0])
    # a class without predictions has AP 0
    assert mean_average_precision([], gt)['mAP'][0.5] == 0.0


def test_localization_rejects_bad_input():
    with pytest.raises(ValueError, match=r'predictions\[0\].*\(video_id, start, end, label, score\)'):
        mean_average_precision([('v', 0, 1, 0)], GROUND_TRUTH)
    with pytest.raises(ValueError, match=r'ground_truth\[1\]: end 1'):
        mean_average_precision([], [('v', 0, 1, 0), ('v', 5, 1, 0)])
    with pytest.raises(ValueError, match='at least one'):
        mean_average_precision(PREDICTIONS, [])
    with pytest.raises(ValueError, match='lengths'):
        temporal_nms([(0, 1, 0, 0.5), ('v', 0, 1, 0, 0.5)], 0.5)


def test_segments_then_nms_then_map_end_to_end():
    # a per-frame class-probability track that finds the only action exactly scores AP 1
    scores = np.zeros((20, 2))
    scores[:, 0] = 1.0
    scores[5:12] = [0.1, 0.9]
    segments = temporal_nms(segments_from_scores(scores, 0.5, ignore_index=0), 0.5)
    predictions = [('video', s, e, label, score) for s, e, label, score in segments]
    result = mean_average_precision(predictions, [('video', 5, 12, 1)])
    assert result['mAP'] == {0.3: 1.0, 0.5: 1.0, 0.7: 1.0}


# ---- BLEU -------------------------------------------------------------------------------------


REFERENCES = [["the cat is on the mat", "a cat sat on the mat"],
              ["the dog runs fast", "a dog ran very fast"]]
HYPOTHESES = ["the cat sat on the mat", "a dog runs"]
# Sentence 1 (6 tokens), n-grams found in some reference:
#   1-grams: the x2 (clip: 2 in ref 1), cat, sat, on, mat -> 6/6
#   2-grams: the cat, cat sat, sat on, on the, the mat -> 5/5
#   3-grams: the cat sat (no), cat sat on, sat on the, on the mat -> 3/4
#   4-grams: the cat sat on (no), cat sat on the, sat on the mat -> 2/3
# Sentence 2 (3 tokens): a, dog, runs -> 3/3; a dog, dog runs -> 2/2; a dog runs -> 0/1; no 4-grams
# Corpus: p1 = 9/9, p2 = 7/7, p3 = 3/5, p4 = 2/3
# Lengths: c = 9; closest references 6 (to 6) and 4 (to 3) -> r = 10; BP = exp(1 - 10/9)
BP = math.exp(1 - 10 / 9)


def test_corpus_bleu_by_hand():
    result = corpus_bleu(REFERENCES, HYPOTHESES)
    assert result['precisions'] == pytest.approx([1, 1, 3 / 5, 2 / 3])
    assert (result['hyp_len'], result['ref_len']) == (9, 10)
    assert result['brevity_penalty'] == pytest.approx(BP)
    assert result['BLEU-1'] == pytest.approx(BP)
    assert result['BLEU-2'] == pytest.approx(BP)
    assert result['BLEU-3'] == pytest.approx(BP * (3 / 5) ** (1 / 3))
    assert result['BLEU-4'] == pytest.approx(BP * (3 / 5 * 2 / 3) ** (1 / 4))     # 0.7116...
    tokenized = corpus_bleu([[r.split() for r in refs] for refs in REFERENCES],
                            [h.split() for h in HYPOTHESES])
    assert tokenized == result


def test_corpus_bleu_clipping_ties_and_zero_precision():
    # Papineni's example: "the" x7 against references with at most two "the": p1 = 2/7
    result = corpus_bleu([["the cat is on the mat", "there is a cat on the mat"]], ["the " * 7],
                         max_n=2)
    assert result['precisions'] == pytest.approx([2 / 7, 0])
    assert result['BLEU-1'] == pytest.approx(2 / 7)     # c = 7, closest reference r = 7: BP = 1
    assert result['BLEU-2'] == 0.0                      # p2 = 0, no smoothing
    # closest reference length tie (2 and 4 for a 3-token hypothesis): the shorter, 2 -> BP 1
    assert corpus_bleu([["a b", "a b c d"]], ["a b c"])['ref_len'] == 2
    # a hypothesis longer than its reference is not penalized; one shorter is
    assert corpus_bleu([["a b"]], ["a b"])['BLEU-2'] == 1.0
    assert corpus_bleu([["a b c d"]], ["a b"])['BLEU-2'] == pytest.approx(math.exp(1 - 2))
    # an empty hypothesis scores 0 everywhere
    assert corpus_bleu([["a b"]], [""])['BLEU-1'] == 0.0


def test_corpus_bleu_rejects_bad_input():
    with pytest.raises(ValueError, match='2 reference lists for 1 hypotheses'):
        corpus_bleu([["a"], ["b"]], ["a"])
    with pytest.raises(ValueError, match=r'references\[0\]: expected at least one'):
        corpus_bleu([[]], ["a"])
    with pytest.raises(TypeError, match=r'hypotheses\[0\]'):
        corpus_bleu([["a"]], [3])


def _random_corpus(seed, sentences=30, references=2):
    """References of 4..12 tokens over a 6-word vocabulary; each hypothesis is its first reference
    with about a third of the tokens replaced and a random length change (at least 4 tokens), so
    every order up to 4 has matches and the lengths differ both ways."""
    rng = np.random.default_rng(seed)
    vocab = np.array(['a', 'man', 'is', 'cooking', 'the', 'food'])

    def sentence():
        return list(rng.choice(vocab, rng.integers(4, 13)))

    refs, hyps = [], []
    for _ in range(sentences):
        rs = [sentence() for _ in range(references)]
        hyp = [w if rng.random() > 0.3 else str(rng.choice(vocab)) for w in rs[0]]
        hyp = hyp[:max(4, len(hyp) - int(rng.integers(0, 3)))] + list(rng.choice(vocab, rng.integers(0, 2)))
        refs.append([' '.join(r) for r in rs])
        hyps.append(' '.join(hyp))
    return refs, hyps


@pytest.mark.optional
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_corpus_bleu_matches_nltk(seed):
    bleu_score = pytest.importorskip('nltk.translate.bleu_score')
    refs, hyps = _random_corpus(seed)
    ours = corpus_bleu(refs, hyps)
    for n in range(1, 5):
        theirs = bleu_score.corpus_bleu([[r.split() for r in rs] for rs in refs],
                                        [h.split() for h in hyps], weights=(1 / n,) * n)
        assert ours[f'BLEU-{n}'] == pytest.approx(theirs, rel=1e-12)
    theirs = bleu_score.corpus_bleu([[r.split() for r in rs] for rs in REFERENCES],
                                    [h.split() for h in HYPOTHESES[:1]] + [HYPOTHESES[1].split()],
                                    weights=(1 / 3,) * 3)
    assert corpus_bleu(REFERENCES, HYPOTHESES)['BLEU-3'] == pytest.approx(theirs, rel=1e-12)


@pytest.mark.optional
@pytest.mark.parametrize('seed', [0, 1])
def test_corpus_bleu_matches_sacrebleu(seed):
    sacrebleu = pytest.importorskip('sacrebleu')
    refs, hyps = _random_corpus(seed)
    streams = [[rs[k] for rs in refs] for k in range(2)]        # sacrebleu: one stream per reference
    theirs = sacrebleu.corpus_bleu(hyps, streams, tokenize='none', smooth_method='none', force=True)
    ours = corpus_bleu(refs, hyps)
    assert ours['BLEU-4'] * 100 == pytest.approx(theirs.score, rel=1e-9)
    assert (ours['hyp_len'], ours['ref_len']) == (theirs.sys_len, theirs.ref_len)
