#!/usr/bin/env python3
"""Test `corpus`: `attn corpus bible` over the installed Debian SWORD modules
(sword-text-sparv, sword-text-kjv; sword-text-web for the versification
check).

    check_corpus.py ATTN WORKDIR

The whole Bible once, Genesis and Exodus twice (determinism: identical
files); per split the .src/.tgt/.keys/.align line counts agree, no verse is
in two splits, the split sizes follow the documented rule, known verses come
out as expected (Gen 1:1 in both languages, a footnote and an epistle's
subscription title stripped), alignment indices are in range and Gen 1:1
links "Dios" to "God" (H0430); then the failures: an unknown module (the
message names the Debian package), two versifications, an --out that is a
file, an unknown book, a bad command line, a folder that cannot be written
(as user nobody when run as root). Modules that are not installed are a
failure: the README's test command installs them.
"""
import os
import shutil
import subprocess
import sys
import time

ATTN, WORK = sys.argv[1], sys.argv[2]
SPLITS = ("train", "valid", "test")
KINDS = ("src", "tgt", "keys", "align")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, as_user=None):
    # as_user: run attn as that user (setpriv, util-linux), for the checks a
    # root process would pass whatever the permissions
    pre = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"] \
        if as_user else []
    return subprocess.run([*pre, ATTN, "corpus", *args], capture_output=True, text=True)


def read(d):
    out = {}
    for s in SPLITS:
        for k in KINDS:
            with open(os.path.join(d, f"{s}.{k}"), encoding="utf-8") as f:
                data = f.read()
            check(data.endswith("\n"), f"{d}/{s}.{k} ends with a newline")
            out[s, k] = data.split("\n")[:-1]
    return out


def expected_sizes(n):
    k = max(3, n // 300)
    valid = sum(1 for i in range(n) if i % k == k // 2)
    test = sum(1 for i in range(n) if i % k == k // 2 + 1)
    return n - valid - test, valid, test


def verify(d, whole):
    c = read(d)
    seen = {}
    pairs = 0
    for s in SPLITS:
        n = len(c[s, "src"])
        pairs += n
        for k in KINDS:
            check(len(c[s, k]) == n, f"{d}: {s}.{k} has {len(c[s, k])} lines, {s}.src {n}")
        for i, key in enumerate(c[s, "keys"]):
            check(key not in seen, f"{d}: {key} in {s} and in {seen.get(key)}")
            seen[key] = s
            src, tgt = c[s, "src"][i], c[s, "tgt"][i]
            for side, line in (("src", src), ("tgt", tgt)):
                check(line.strip() != "" and line == " ".join(line.split()),
                      f"{d}: {s}.{side} line {i + 1} ({key}) is empty or has extra white space")
                check("<" not in line or key == "", f"{d}: markup left in {key}: {line}")
            ns, nt = len(src.split()), len(tgt.split())
            for link in c[s, "align"][i].split():
                a, b = link.split("-")
                check(0 <= int(a) < ns and 0 <= int(b) < nt,
                      f"{d}: {key}: link {link} out of range ({ns} x {nt} words)")
    sizes = tuple(len(c[s, "src"]) for s in SPLITS)
    check(sizes == expected_sizes(pairs), f"{d}: split sizes {sizes}, expected "
                                          f"{expected_sizes(pairs)} for {pairs} pairs")
    if whole:
        check(30000 < pairs <= 31102, f"{d}: {pairs} verse pairs")
        check(250 <= sizes[1] <= 350 and 250 <= sizes[2] <= 350, f"{d}: valid/test {sizes}")
    # the verses in the order of the book: the splits interleaved
    where = {}
    for s in SPLITS:
        for i, key in enumerate(c[s, "keys"]):
            where[key] = (c[s, "src"][i], c[s, "tgt"][i], c[s, "align"][i])
    src, tgt, align = where["Gen 1:1"]
    check(src == "EN el principio crió Dios los cielos y la tierra.", f"Gen 1:1 src: {src}")
    check(tgt == "In the beginning God created the heaven and the earth.", f"Gen 1:1 tgt: {tgt}")
    check("4-3" in align.split(), f"Gen 1:1: no link Dios-God (4-3) in {align}")
    src, tgt, _ = where["Gen 1:4"]
    check(tgt == "And God saw the light, that it was good: and God divided the light from "
                 "the darkness.", f"Gen 1:4 tgt (footnote stripped): {tgt}")
    check(src.startswith("Y vió Dios que la luz era buena:"), f"Gen 1:4 src: {src}")
    if whole:
        _, tgt, _ = where["Rom 16:27"]
        check(tgt == "To God only wise, be glory through Jesus Christ for ever. Amen.",
              f"Rom 16:27 tgt (subscription title stripped): {tgt}")
        src, tgt, _ = where["Ps 3:1"]
        check(tgt.startswith("A Psalm of David, when he fled from Absalom his son. LORD, how"),
              f"Ps 3:1 tgt (canonical title kept): {tgt}")
        check(src.startswith("Salmo de David,"), f"Ps 3:1 src: {src}")
    else:
        check(all(k.split()[0] in ("Gen", "Exod") for k in seen), f"{d}: books beyond Gen,Exod")
    return c


def fails(args, code, *words, as_user=None):
    r = run(*args, as_user=as_user)
    lines = r.stderr.strip().split("\n")
    check(r.returncode == code, f"attn corpus {' '.join(args)}: exit {r.returncode}, "
                                f"expected {code}: {r.stderr.strip()}")
    check(len(lines) == 1 and lines[0].startswith("attn: "),
          f"attn corpus {' '.join(args)}: not one line on stderr: {r.stderr!r}")
    for w in words:
        check(w in r.stderr, f"attn corpus {' '.join(args)}: {w!r} not in {r.stderr.strip()}")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    probe = run("bible", "--books", "Obad", "--out", os.path.join(WORK, "probe"))
    if probe.returncode != 0 and "is installed" in probe.stderr:
        # the README's test command installs them: missing is a failure
        print("FAIL: the SWORD modules are not installed (Debian: sword-text-sparv, "
              "sword-text-kjv; `sh cmake/dev.sh deps` installs them):", probe.stderr.strip())
        sys.exit(1)
    check(probe.returncode == 0, f"attn corpus bible --books Obad: {probe.stderr}")

    full = os.path.join(WORK, "full")
    t0 = time.time()
    r = run("bible", "--out", full)
    print(f"attn corpus bible: {time.time() - t0:.1f} s\n{r.stdout}", end="")
    check(r.returncode == 0, f"attn corpus bible: exit {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        verify(full, True)

    ge1, ge2 = os.path.join(WORK, "ge1"), os.path.join(WORK, "ge2")
    for d in (ge1, ge2):
        r = run("bible", "--src-module", "spaRV1909eb", "--tgt-module", "engKJV2006eb",
                "--books", "Gen,Exod", "--out", d)
        check(r.returncode == 0, f"--books Gen,Exod: exit {r.returncode}: {r.stderr}")
    if not failures:
        verify(ge1, False)
        for s in SPLITS:
            for k in KINDS:
                with open(os.path.join(ge1, f"{s}.{k}"), "rb") as a, \
                        open(os.path.join(ge2, f"{s}.{k}"), "rb") as b:
                    check(a.read() == b.read(), f"two runs differ in {s}.{k}")
        # the same verses as the whole run's Genesis and Exodus, split apart differently
        c = read(ge1)
        keys = [k for s in SPLITS for k in c[s, "keys"]]
        check(len(keys) == 1533 + 1213, f"Gen,Exod: {len(keys)} verse pairs, not 2746")

    # bad input: one line, exit 1 (cannot be run here) or 2 (bad command line)
    new = os.path.join(WORK, "never")
    fails(["bible", "--tgt-module", "engKJV2006ebX", "--out", new], 1, "engKJV2006ebX",
          "sword-text")
    fails(["bible", "--tgt-module", "engWEB2015eb", "--out", new], 1, "versification",
          "NRSVA")
    afile = os.path.join(WORK, "afile")
    with open(afile, "w") as f:
        f.write("x\n")
    fails(["bible", "--out", afile], 1, "not a directory")
    fails(["bible", "--books", "Gen,Xyz", "--out", new], 2, "Xyz")
    fails(["bible"], 2, "--out")
    fails(["bible", "--out", new, "--bogus"], 2, "bogus")
    fails([], 2, "bible")
    fails(["bibel", "--out", new], 2, "bibel")
    check(not os.path.exists(new), "a failed run left its --out folder behind")
    # a folder that cannot be written: root writes anywhere, so as root the
    # check runs as the unprivileged user 65534 (nobody)
    ro = os.path.join(WORK, "ro")
    os.makedirs(ro)
    os.chmod(WORK, 0o755)
    os.chmod(ro, 0o555)
    fails(["bible", "--books", "Obad", "--out", os.path.join(ro, "c")], 1, "ro",
          as_user=65534 if os.geteuid() == 0 else None)
    os.chmod(ro, 0o700)
    r = subprocess.run([ATTN, "corpus", "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "--src-module" in r.stdout, "attn corpus --help")

    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("corpus: all checks passed")


main()
