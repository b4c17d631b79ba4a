#!/usr/bin/env python3
"""test text_metrics: `attn eval` against implementations it shares no code with.

    check_metrics.py ATTN WORKDIR

BLEU: NLTK's corpus_bleu (Debian's python3-nltk) with SmoothingFunction().method3
(NIST's geometric smoothing, the same as sacreBLEU's default 'exp'), on text that
tok13a() below tokenizes. tok13a is written from the definition of mteval-v13a as
sacreBLEU 2.x states it (sacrebleu/tokenizers/tokenizer_13a.py and tokenizer_re.py of
mjpost/sacrebleu): the language-independent replacements, then the four regular
expressions, then splitting on white space; sacreBLEU rstrips each segment first.

Where NLTK's definitions differ from sacreBLEU's, the comparison says so:
- NLTK counts max(1, t) hypothesis n-grams for a segment with t = 0 n-grams of an
  order (an empty or short hypothesis); sacreBLEU counts 0. For corpora with such
  segments the test takes NLTK's clipped matches (modified_precision's numerator),
  its closest reference length and its brevity penalty, counts t itself, and
  combines them with sacreBLEU's formula (compute_bleu in sacrebleu/metrics/bleu.py:
  p_n = 100 c_n / t_n, the k-th order without a match 100 / (2^k t_n), an order
  with t_n = 0 ends the sum, BLEU = BP exp(sum(log p_n) / 4)).
- Everywhere else (every hypothesis of at least 4 tokens) corpus_bleu itself is
  the reference. The tolerance is 1e-9 on the 0..100 scale.

chrF: chrf() below, written from sacreBLEU 2.x's CHRF (sacrebleu/metrics/chrf.py):
white space removed ("".join(s.split())), character n-grams of orders 1..6,
hypothesis n-grams of an order not counted where the reference has none, the
best reference by segment chrF, statistics summed over the corpus, precision and
recall averaged over the orders where both counts are positive, F-beta with
beta 2 (eps_smoothing off, sacreBLEU's default).

Exit status 77 (skipped) when NLTK is missing and CI is not set; 1 on any failure.
"""
import json
import math
import os
import random
import re
import stat
import subprocess
import sys
from collections import Counter
from fractions import Fraction

ATTN, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)

try:
    from nltk.translate.bleu_score import (SmoothingFunction, brevity_penalty,
                                           closest_ref_length, corpus_bleu,
                                           modified_precision)
except ImportError:
    if os.environ.get("CI") == "true":
        print("text_metrics: NLTK is missing (Debian: python3-nltk); CI needs it")
        sys.exit(1)
    print("text_metrics: skipped: NLTK is missing (Debian: python3-nltk, "
          "installed by sh cmake/dev.sh)")
    sys.exit(77)

TOL = 1e-9
failures = []
worst = {"bleu": 0.0, "chrf": 0.0}


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


# ---------------------------------------------------------------- 13a, from its definition
_RE13A = [
    (re.compile(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'), r' \1 '),
    (re.compile(r'([^0-9])([\.,])'), r'\1 \2 '),
    (re.compile(r'([\.,])([^0-9])'), r' \1 \2'),
    (re.compile(r'([0-9])(-)'), r'\1 \2 '),
]


def tok13a(line):
    line = line.rstrip()
    for a, b in (('<skipped>', ''), ('-\n', ''), ('\n', ' '), ('&quot;', '"'),
                 ('&amp;', '&'), ('&lt;', '<'), ('&gt;', '>')):
        line = line.replace(a, b)
    line = " {} ".format(line)
    for rx, repl in _RE13A:
        line = rx.sub(repl, line)
    return line.split()


# ---------------------------------------------------------------- BLEU references
def bleu_nltk(hyps, refsets):
    """NLTK's corpus_bleu on 13a tokens, 0..100, or None where it does not apply."""
    H = [tok13a(h) for h in hyps]
    R = [[tok13a(r) for r in rs if r != ""] for rs in refsets]
    if any(len(h) < 4 for h in H):
        return None
    return 100 * corpus_bleu(R, H, smoothing_function=SmoothingFunction().method3)


def bleu_counts(hyps, refsets):
    """Counts from NLTK's parts, totals counted here, sacreBLEU's formula."""
    H = [tok13a(h) for h in hyps]
    R = [[tok13a(r) for r in rs if r != ""] for rs in refsets]
    c, t = [0] * 4, [0] * 4
    hl = rl = 0
    for h, rs in zip(H, R):
        for n in range(1, 5):
            c[n - 1] += modified_precision(rs, h, n).numerator
            t[n - 1] += max(0, len(h) - n + 1)
        hl += len(h)
        rl += closest_ref_length(rs, len(h))
    bp = brevity_penalty(rl, hl) if hl else 0.0
    p = [0.0] * 4
    score = 0.0
    if any(c):
        k = 1
        for n in range(4):
            if t[n] == 0:
                break
            if c[n] == 0:
                k *= 2
                p[n] = 100. / (k * t[n])
            else:
                p[n] = 100. * c[n] / t[n]
        score = bp * math.exp(sum(math.log(x) if x else -9999999999 for x in p) / 4)
    return {"bleu": score, "counts": c, "totals": t, "hyp_len": hl, "ref_len": rl,
            "bp": float(bp), "precisions": p}


# ---------------------------------------------------------------- chrF, from its definition
def chrf(hyps, refsets, order=6, beta=2):
    def grams(s, n):
        return Counter(s[i:i + n] for i in range(len(s) - n + 1))

    def fscore(st):
        f2 = beta ** 2
        P = R = 0.0
        eff = 0
        for nh, nr, nm in st:
            if nh > 0 and nr > 0:
                P += nm / nh
                R += nm / nr
                eff += 1
        if eff:
            P, R = P / eff, R / eff
        return 100 * (1 + f2) * P * R / (f2 * P + R) if P + R else 0.0

    total = [[0, 0, 0] for _ in range(order)]
    for h, rs in zip(hyps, refsets):
        h = "".join(h.split())
        best, best_f = None, -1.0
        for r in rs:
            if r == "":
                continue
            r = "".join(r.split())
            st = []
            for n in range(1, order + 1):
                hg, rg = grams(h, n), grams(r, n)
                st.append([sum(hg.values()) if rg else 0, sum(rg.values()),
                           sum((hg & rg).values())])
            f = fscore(st)
            if f > best_f:
                best, best_f = st, f
        for i in range(order):
            for j in range(3):
                total[i][j] += best[i][j]
    return fscore(total)


# ---------------------------------------------------------------- running attn eval
def write(path, lines, end="\n"):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(l + end for l in lines))


def attn_eval(name, hyps, refsets):
    hp = os.path.join(WORK, name + ".hyp")
    write(hp, hyps)
    args = [ATTN, "eval", "--hyp", hp, "--json"]
    for k in range(len(refsets[0])):
        rp = os.path.join(WORK, "%s.ref%d" % (name, k))
        write(rp, [rs[k] for rs in refsets])
        args += ["--ref", rp]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail("%s: attn eval exited %d: %s" % (name, p.returncode, p.stderr.strip()))
        return None
    return json.loads(p.stdout)


def compare(name, hyps, refsets):
    got = attn_eval(name, hyps, refsets)
    if got is None:
        return
    ref = bleu_counts(hyps, refsets)
    for key in ("counts", "totals", "hyp_len", "ref_len"):
        if got[key] != ref[key]:
            fail("%s: %s %s, NLTK's parts %s" % (name, key, got[key], ref[key]))
    d = abs(got["bleu"] - ref["bleu"])
    for a, b in zip(got["precisions"], ref["precisions"]):
        d = max(d, abs(a - b))
    d = max(d, abs(got["bp"] - ref["bp"]))
    whole = bleu_nltk(hyps, refsets)
    how = "NLTK parts + sacreBLEU formula"
    if whole is not None:
        d = max(d, abs(got["bleu"] - whole))
        how = "NLTK corpus_bleu"
    worst["bleu"] = max(worst["bleu"], d)
    if d > TOL:
        fail("%s: BLEU %.12f, %s %.12f (diff %.3g)" % (name, got["bleu"], how,
                                                       whole if whole is not None else ref["bleu"], d))
    c = chrf(hyps, refsets)
    dc = abs(got["chrf"] - c)
    worst["chrf"] = max(worst["chrf"], dc)
    if dc > TOL:
        fail("%s: chrF %.12f, Python chrF %.12f (diff %.3g)" % (name, got["chrf"], c, dc))
    print("%-22s %4d segments  BLEU %8.4f (%s)  chrF2 %8.4f  |dBLEU| %.2g  |dchrF| %.2g" % (
        name, len(hyps), got["bleu"], how, got["chrf"], d, dc))


# ---------------------------------------------------------------- the corpora
rng = random.Random(20240917)
WORDS = ("the cat dog man sat on a mat and bit him it was not surprising had just bitten "
         "house river light water said unto them they shall go forth into land of "
         "LORD God people king city day night voice heard").split()
ODD = ["1,000.50", "3-4", "12.5%", "U.S.", "e-mail", "don't", "(see", "below)", '"quoted"',
       "&quot;x&quot;", "&amp;", "a/b", "x<skipped>y", "$100", "#1", "caf\u00e9", "ni\u00f1o",
       "\u4f60\u597d", "\u00fcber", "na\u00efve.", "\u00bfqu\u00e9?", "\u2014", "\u00ab\u00bb",
       "1.", "2,", ",3", ".5", "9-", "--", "...", "\U0001F600", "\u0391\u03b8\u03ae\u03bd\u03b1",
       "\u043c\u0438\u0440", "Stra\u00dfe"]
PUNCT = [".", ",", "!", "?", ";", ":"]


def sentence(lo=4, hi=18, odd=0.15):
    n = rng.randint(lo, hi)
    ws = [rng.choice(ODD) if rng.random() < odd else rng.choice(WORDS) for _ in range(n)]
    s = " ".join(ws)
    if rng.random() < 0.7:
        s += rng.choice(PUNCT)
    return s


def perturb(s, rate=0.3):
    ws = s.split()
    out = []
    for w in ws:
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(rng.choice(WORDS))
        else:
            out.append(w)
        if rng.random() < rate / 6:
            out.append(rng.choice(WORDS + ODD))
    if len(out) > 3 and rng.random() < rate:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    s = " ".join(out)
    if rng.random() < 0.1:
        s += rng.choice([" ", " \t", "\u00a0", "\u3000", "\r"])   # trailing white space
    return s


VERSES = [
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good: and God divided the light from the darkness.",
    "And the LORD said unto Moses, Go in unto Pharaoh, and tell him,",
    "Thus saith the LORD God of the Hebrews, Let my people go, that they may serve me.",
    "And it came to pass in those days, that there went out a decree from Caesar Augustus.",
    "Blessed are the poor in spirit: for theirs is the kingdom of heaven.",
    "The LORD is my shepherd; I shall not want.",
    "He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    "And they said, Is not this Joseph's son?",
    "Now the serpent was more subtil than any beast of the field which the LORD God had made.",
    "And Jacob served seven years for Rachel; and they seemed unto him but a few days.",
    "And the whole earth was of one language, and of one speech.",
    "Fifty and two thousand, seven hundred and thirty (52,730) were numbered.",
    "And the days of Methuselah were nine hundred sixty and nine years: and he died.",
    "Y dijo Dios: Sea la luz; y fu\u00e9 la luz.",
    "\u00bfNo es \u00e9ste el hijo de Jos\u00e9?",
    "Jehov\u00e1 es mi pastor; nada me faltar\u00e1.",
    "Am Anfang schuf Gott Himmel und Erde \u2014 und die Erde war w\u00fcst und leer.",
]
VERSES_ALT = [
    "In the beginning God made the heavens and the earth.",
    "The earth was formless and empty, and darkness was over the surface of the deep.",
    "God said, Let there be light, and there was light.",
    "God saw that the light was good, and he separated the light from the darkness.",
    "Then the LORD said to Moses, Go to Pharaoh and say to him,",
    "This is what the LORD, the God of the Hebrews, says: Let my people go, so that they may worship me.",
    "In those days Caesar Augustus issued a decree.",
    "Blessed are the poor in spirit, for theirs is the kingdom of heaven.",
    "The LORD is my shepherd, I lack nothing.",
    "He makes me lie down in green pastures, he leads me beside quiet waters.",
    "Isn't this Joseph's son? they asked.",
    "Now the serpent was more crafty than any of the wild animals the LORD God had made.",
    "So Jacob served seven years to get Rachel, but they seemed like only a few days to him.",
    "Now the whole world had one language and a common speech.",
    "52,730 in all were counted.",
    "Methuselah lived 969 years, and then he died.",
    "Dijo Dios: \u00a1Que exista la luz! Y la luz lleg\u00f3 a existir.",
    "\u00bfAcaso no es \u00e9ste el hijo de Jos\u00e9?",
    "El Se\u00f1or es mi pastor, nada me falta.",
    "Im Anfang schuf Gott den Himmel und die Erde.",
]

corpora = []
# synthetic corpora of a few hundred segments, single reference
# (synthetic0 and 2: every hypothesis has 4 tokens or more, so that NLTK's
# corpus_bleu applies as it is; synthetic1 keeps the short ones)
for k, (n, rate) in enumerate([(300, 0.2), (250, 0.45), (400, 0.1)]):
    refs = [sentence(6, 20) for _ in range(n)]
    hyps = []
    for r in refs:
        h = perturb(r, rate)
        while k != 1 and len(tok13a(h)) < 4:
            h = perturb(r, rate)
        hyps.append(h)
    corpora.append(("synthetic%d" % k, hyps, [[r] for r in refs]))
# with empty hypothesis lines and short ones (NLTK's denominators differ: parts)
refs = [sentence() for _ in range(200)]
hyps = [perturb(r) if i % 7 else "" for i, r in enumerate(refs)]
hyps[3] = "the cat"
corpora.append(("empty_lines", hyps, [[r] for r in refs]))
# real-looking: verses against a modern rendering, and a noisy copy of them
corpora.append(("verses_alt", VERSES_ALT, [[v] for v in VERSES]))
corpora.append(("verses_noisy", [perturb(v, 0.35) for v in VERSES * 10],
                [[v] for v in VERSES * 10]))
# two references per segment (closest length, clipping by the largest count)
corpora.append(("two_refs", [perturb(v, 0.3) for v in VERSES],
                [[v, a] for v, a in zip(VERSES, VERSES_ALT)]))
refs = [sentence() for _ in range(150)]
corpora.append(("three_refs", [perturb(r, 0.3) for r in refs],
                [[r, perturb(r, 0.2), perturb(r, 0.5)] for r in refs]))
# a zero-match order: shuffled words keep unigrams, lose every 4-gram
refs = ["alpha beta gamma delta epsilon zeta", "one two three four five six"]
corpora.append(("no_4gram_match", ["beta alpha delta gamma zeta epsilon",
                                   "two one four three six five"], [[r] for r in refs]))
corpora.append(("no_3_4gram_match", ["beta alpha gamma delta zeta epsilon",
                                     "two one three four six five"], [[r] for r in refs]))
# nothing matches at all; a corpus shorter than 4 tokens (total_4 = 0)
corpora.append(("no_match", ["x y z w", "p q r s"], [["a b c d"], ["e f g h"]]))
corpora.append(("three_tokens", ["the cat", "sat"], [["the cat"], ["sat down"]]))
# punctuation, numbers and Unicode, hand-made
corpora.append(("punct_numbers", [
    "He paid $1,000.50 (cash) -- on 3-4 May, e-mail: a@b.c.",
    "\"Quoted,\" she said; 'single' isn't split.",
    "&quot;Escaped&quot; &amp; &lt;tagged&gt; text<skipped> here.",
    "Numbers: 1.5, 2,000, .5, 5., 9-, -9, 3.14-2.71",
    "Caf\u00e9 na\u00efve \u00fcber \u4f60\u597d\u4e16\u754c \U0001F600 \u0391\u03b8\u03ae\u03bd\u03b1.",
    "Trailing\u00a0no-break\u00a0space\u00a0",
], [[r] for r in [
    "He paid $1,000.50 in cash on 3-4 May, e-mail: a@b.c.",
    "\"Quoted,\" she said; 'single' is not split.",
    "\"Escaped\" & <tagged> text here.",
    "Numbers: 1.5, 2,000, .5, 5., 9-, -9, 3.14-2.71",
    "Caf\u00e9 naive uber \u4f60\u597d\u4e16\u754c \U0001F600 \u0391\u03b8\u03ae\u03bd\u03b1!",
    "Trailing no-break space",
]]))
corpora.append(("identical", VERSES, [[v] for v in VERSES]))

total = 0
for name, hyps, refsets in corpora:
    compare(name, hyps, refsets)
    total += len(hyps)

# ---------------------------------------------------------------- published sacreBLEU values
# sacreBLEU's own test/test_bleu.py (mjpost/sacrebleu, test_corpus_bleu_cases): the
# README example with two references per segment scores 48.530827 by default.
got = attn_eval("sacrebleu_readme",
                ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."],
                [["The dog bit the man.", "The dog had bit the man."],
                 ["It was not unexpected.", "No one was surprised."],
                 ["The man bit him first.", "The man had bitten the dog."]])
if got is None or abs(got["bleu"] - 48.530827) > 1e-8:
    fail("sacreBLEU's README example: %s, published 48.530827" % (got and got["bleu"]))
else:
    print("sacreBLEU README example: BLEU %.9f (published 48.530827)" % got["bleu"])


# ---------------------------------------------------------------- the text output and bad input
def run(args, timeout=20):
    return subprocess.run([ATTN, "eval"] + args, capture_output=True, text=True,
                          timeout=timeout)


h = os.path.join(WORK, "sacrebleu_readme.hyp")
r = os.path.join(WORK, "sacrebleu_readme.ref0")
p = run(["--hyp", h, "--ref", r])
line = p.stdout.splitlines()[0] if p.stdout else ""
if p.returncode != 0 or not re.fullmatch(
        r"BLEU = \d+\.\d\d \d+\.\d/\d+\.\d/\d+\.\d/\d+\.\d \(BP = \d\.\d{3} ratio = \d\.\d{3} "
        r"hyp_len = \d+ ref_len = \d+\)", line) or not re.fullmatch(
        r"chrF2 = \d+\.\d\d", p.stdout.splitlines()[1]):
    fail("text output: %r (%s)" % (p.stdout, p.stderr))


def expect(what, args, code, *words):
    try:
        p = run(args)
    except subprocess.TimeoutExpired:
        fail("%s: attn eval hung" % what)
        return
    msg = p.stderr.strip()
    ok = p.returncode == code and msg.startswith("attn: eval: ") and len(msg.splitlines()) == 1
    ok = ok and all(w in msg for w in words) and p.stdout == ""
    if not ok:
        fail("%s: exit %d, stderr %r, expected exit %d and %s" % (what, p.returncode, msg, code,
                                                                   words))
    else:
        print("bad input: %-22s -> %d %s" % (what, code, msg))


def path(name, text, mode="w"):
    q = os.path.join(WORK, name)
    with open(q, mode) as f:
        f.write(text)
    return q


three = path("three.txt", "a b c\nd e f\ng h i\n")
four = path("four.txt", "a b c\nd e f\ng h i\nj k l\n")
expect("line counts", ["--hyp", three, "--ref", four], 1, "4 lines", "has 3", "line 4")
bad = path("bad_utf8.txt", b"a b c\nd \xc3\x28 f\ng h i\n", "wb")
expect("invalid UTF-8", ["--hyp", bad, "--ref", three], 1, "bad_utf8.txt", "line 2",
       "not valid UTF-8")
expect("surrogate", ["--hyp", three, "--ref",
                     path("surrogate.txt", b"a\n\xed\xa0\x80\nc\n", "wb")], 1, "line 2")
empty_ref = path("empty_ref.txt", "a b c\n  \ng h i\n")
expect("empty reference line", ["--hyp", three, "--ref", empty_ref], 1, "line 2", "empty")
expect("empty hypothesis file", ["--hyp", path("empty.txt", ""), "--ref", three], 1,
       "no line")
expect("missing file", ["--hyp", three, "--ref", os.path.join(WORK, "nope.txt")], 1,
       "nope.txt")
fifo = os.path.join(WORK, "fifo")
if os.path.exists(fifo):
    os.unlink(fifo)
os.mkfifo(fifo)
expect("FIFO", ["--hyp", fifo, "--ref", three], 1, "fifo")
expect("directory", ["--hyp", three, "--ref", WORK], 1)
expect("no --ref", ["--hyp", three], 2, "--ref")
expect("--model, a missing model", ["--model", os.path.join(WORK, "m.safetensors"), "--src",
                                    three, "--ref", three], 1, "m.safetensors")
os.unlink(fifo)

print("text_metrics: %d corpora, %d segment pairs; largest |BLEU - reference| %.3g, "
      "largest |chrF - reference| %.3g (tolerance %g)" % (len(corpora), total, worst["bleu"],
                                                         worst["chrf"], TOL))
if failures:
    print("text_metrics: %d failure(s)" % len(failures))
    sys.exit(1)
print("text_metrics: OK")
