"""Corpus BLEU (Papineni et al., 2002) for video captioning: BLEU-1 to BLEU-4 in one pass.

    references = [["a man is cooking", "someone cooks food"], ["a dog runs"]]   # per hypothesis
    hypotheses = ["a man cooks", "a dog is running"]
    corpus_bleu(references, hypotheses)['BLEU-4']

Strings are split on whitespace; pass token lists to control tokenization yourself (lower-casing
and punctuation are the caller's choice, and they change the score).
"""
import math
from collections import Counter

__all__ = ['corpus_bleu']


def _tokens(text, where):
    if isinstance(text, str):
        return text.split()
    try:
        tokens = list(text)
    except TypeError as error:
        raise TypeError(f'{where}: expected a string or a list of tokens, got {type(text).__name__}') \
            from error
    return tokens


def _ngrams(tokens, n):
    """Counts of the n-grams (as tuples) of a token list; none when it has fewer than n tokens."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references, hypotheses, max_n=4):
    """Corpus-level BLEU-1..BLEU-max_n of `hypotheses` against their `references`.

    references: for each hypothesis, a list of its reference sentences (at least one), each a
        token list or a string (split on whitespace); a bare string stands for one reference.
    hypotheses: one token list or string per sentence.

    For each order n, the modified precision p_n is computed over the whole corpus:
        p_n = sum over sentences of clipped n-gram matches / sum over sentences of hypothesis n-grams,
    where an n-gram's matches are clipped to the largest number of times it occurs in any one
    reference of its sentence (so "the the the" cannot score on one "the").
    Brevity penalty, also at the corpus level: c = total hypothesis length, r = sum over sentences of
    the reference length closest to the hypothesis length (ties: the shorter), and
    BP = 1 if c > r else exp(1 - r / c).
    BLEU-N = BP * exp(sum_{n=1..N} (1/N) log p_n): uniform weights over orders 1..N, as the
    captioning benchmarks (coco-caption's Bleu) report BLEU-1..4.

    No smoothing: if some p_n (n <= N) is 0, BLEU-N is 0 (the geometric mean of a zero is zero;
    sacrebleu's smooth_method='none' gives 0 too; nltk's default warns and substitutes the smallest
    float for the zero, giving a tiny positive value such as 8e-155). If the hypotheses have no
    n-gram of order n at
    all (every one shorter than n), p_n is 0 as well. An empty corpus or all-empty hypotheses give 0.
    Differences from nltk's corpus_bleu: nltk counts at least one n-gram in the denominator of a
    sentence shorter than n (max(1, count)); here such a sentence adds 0, as in Papineni and
    sacrebleu. For hypotheses of at least max_n tokens the two agree.

    Returns a dict: 'BLEU-1' .. 'BLEU-{max_n}' (floats in [0, 1]), 'precisions' (p_1..p_max_n),
    'brevity_penalty', 'hyp_len' (c) and 'ref_len' (r).
    """
    if max_n < 1:
        raise ValueError(f'max_n: expected at least 1, got {max_n}')
    references = list(references)
    hypotheses = list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f'references and hypotheses: expected one list of references per hypothesis, '
                         f'got {len(references)} reference lists for {len(hypotheses)} hypotheses')
    matches = [0] * max_n            # clipped n-gram matches, summed over the corpus
    totals = [0] * max_n             # hypothesis n-grams, summed over the corpus
    hyp_len = ref_len = 0
    for s, (refs, hyp) in enumerate(zip(references, hypotheses)):
        hyp = _tokens(hyp, f'hypotheses[{s}]')
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f'references[{s}]: expected at least one reference sentence, got none')
        refs = [_tokens(ref, f'references[{s}][{k}]') for k, ref in enumerate(refs)]
        hyp_len += len(hyp)
        # the closest reference length; on a tie the shorter one (the larger brevity penalty)
        ref_len += min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), length))
        for n in range(1, max_n + 1):
            hyp_counts = _ngrams(hyp, n)
            max_ref_counts = Counter()
            for ref in refs:
                max_ref_counts |= _ngrams(ref, n)        # | keeps the larger count of each n-gram
            matches[n - 1] += sum(min(count, max_ref_counts[gram]) for gram, count in hyp_counts.items())
            totals[n - 1] += sum(hyp_counts.values())

    precisions = [m / t if t > 0 else 0.0 for m, t in zip(matches, totals)]
    if hyp_len == 0:
        brevity_penalty = 0.0
    elif hyp_len > ref_len:
        brevity_penalty = 1.0
    else:
        brevity_penalty = math.exp(1.0 - ref_len / hyp_len)
    result = {}
    log_sum = 0.0
    for n in range(1, max_n + 1):
        if precisions[n - 1] == 0.0:
            log_sum = -math.inf                           # and it stays so for every higher order
        elif log_sum > -math.inf:
            log_sum += math.log(precisions[n - 1])
        result[f'BLEU-{n}'] = brevity_penalty * math.exp(log_sum / n) if log_sum > -math.inf else 0.0
    result.update(precisions=precisions, brevity_penalty=brevity_penalty, hyp_len=hyp_len,
                  ref_len=ref_len)
    return result
