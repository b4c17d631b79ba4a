"""Shared by the text and translation tests: a small generated Spanish and
English parallel text, python3-sentencepiece when installed, and a tiny
translation model with its tokenizer in the metadata."""

import os
import random
import shutil
import tempfile

import numpy as np

from support import libat

try:
    import sentencepiece as spm
except ImportError:   # Debian: python3-sentencepiece (cmake/dev.sh installs it)
    spm = None


def need_spm(test):
    """A test that compares with python3-sentencepiece: the README's test
    command installs it, so without it the test fails (it never skips)."""
    if spm is not None:
        return test

    def missing(self):
        self.fail("python3-sentencepiece is not installed (Debian: python3-sentencepiece; "
                  "sh cmake/dev.sh test installs it)")
    return missing


# A word-for-word toy dictionary: sentences are random, their "translation"
# the same words mapped (the tiny model learns a little of it).
_PAIRS = [("el", "the"), ("la", "the"), ("casa", "house"), ("perro", "dog"), ("gato", "cat"),
          ("come", "eats"), ("bebe", "drinks"), ("agua", "water"), ("pan", "bread"),
          ("grande", "big"), ("pequeño", "small"), ("rojo", "red"), ("azul", "blue"),
          ("y", "and"), ("en", "in"), ("con", "with"), ("niño", "boy"), ("niña", "girl"),
          ("libro", "book"), ("mesa", "table"), ("señor", "lord"), ("dijo", "said"),
          ("tierra", "earth"), ("cielo", "heaven"), ("luz", "light"), ("día", "day")]


def parallel_text(n=400, seed=3):
    """n (Spanish, English) sentence pairs, 2 to 8 words each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(_PAIRS) for _ in range(rng.randint(2, 8))]
        es = " ".join(w for w, _ in words)
        en = " ".join(w for _, w in words)
        if rng.random() < 0.3:
            es, en = es.capitalize() + ".", en.capitalize() + "."
        out.append((es, en))
    return out


class TextDir:
    """A temporary folder with train.es and train.en (removed by close())."""

    def __init__(self, n=400):
        self.dir = tempfile.mkdtemp(prefix="libat-py-text-")
        self.pairs = parallel_text(n)
        self.es = self.path("train.es")
        self.en = self.path("train.en")
        with open(self.es, "w", encoding="utf-8") as f:
            f.write("\n".join(p[0] for p in self.pairs) + "\n")
        with open(self.en, "w", encoding="utf-8") as f:
            f.write("\n".join(p[1] for p in self.pairs) + "\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tiny_translation_model(tok, tgt_tok=None, steps=40, max_len=40, seed=11):
    """A 2-layer d_model 32 model with the tokenizers' vocabularies, trained
    40 steps on the toy pairs (it then ends some sentences with </s> and runs
    others to the length limit), the
    tokenizer(s) attached."""
    tgt_tok = tok if tgt_tok is None else tgt_tok
    m = libat.Model(src_vocab=tok.vocab_size, tgt_vocab=tgt_tok.vocab_size, layers=2,
                    d_model=32, heads=4, d_ff=64, max_len=max_len, dropout=0.0,
                    attn_dropout=0.0, seed=seed, warmup=20, lr=1.0)
    pairs = parallel_text(64, seed=seed)
    xs = [[2] + tok.encode(es) + [3] for es, _ in pairs]
    ys = [[2] + tgt_tok.encode(en) + [3] for _, en in pairs]
    S = max(map(len, xs))
    T = max(map(len, ys))
    X = np.zeros((len(xs), S), np.int32)
    Y = np.zeros((len(ys), T), np.int32)
    for i, (x, y) in enumerate(zip(xs, ys)):
        X[i, :len(x)] = x
        Y[i, :len(y)] = y
    for step in range(steps):
        b = slice((step * 16) % 64, (step * 16) % 64 + 16)
        m.train_step(X[b], Y[b], pad=0)
    libat.Translator.attach(m, tok, tgt_tok)
    return m
