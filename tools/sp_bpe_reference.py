#!/usr/bin/env python3
"""Writes the SentencePiece-BPE tokenizer fixture for model/sp_bpe_tokenizer_test.cc.

The reference is SentencePiece itself (Debian's command-line tools; no Python
sentencepiece, no Hugging Face `tokenizers` here). The script:

1. trains a small BPE model with `spm_train` on the first TRAIN_LINES lines of
   data/corpus/brown.txt, with byte fallback (so any text is encodable);
2. converts it to a tokenizer.json the way Hugging Face's slow->fast converter
   does for Llama (vocab = pieces in id order; a merge (l, r) for every split
   of every piece into two pieces that are both in the vocab, ordered by the
   merged piece's score, best first, and for one piece by (id of l, id of r);
   normalizer Prepend("▁") + Replace(" " -> "▁"); BPE with byte_fallback and
   fuse_unk; decoder Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0);
   the three control pieces as added special tokens);
3. writes tokenizer.model, tokenizer.json and expected_ids.json (the ids of
   `spm_encode --output_format=id` for held-out Brown lines and adversarial
   strings) under the output directory.

Normalization choice: SentencePiece normalizes with NFKC and collapses runs of
spaces by default, which a Llama tokenizer.json does not do (Llama's own model
was trained with `--normalization_rule_name=identity` and
`--remove_extra_whitespaces=false`). We train with the same two flags, so the
comparison is about the BPE and the whitespace handling, not about NFKC.

`spm_encode` reads one sentence per line, so texts holding a newline or a
carriage return cannot get reference ids from it: they are listed under
"multiline_texts" without ids, and the C++ test compares them with the
SentencePiece library on the same tokenizer.model instead.

Run from the repository root:

    /usr/bin/python3 tools/sp_bpe_reference.py tests/data/sp_bpe
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

CORPUS = "data/corpus/brown.txt"
TRAIN_LINES = 4000  # lines [0, TRAIN_LINES) train the model
TEST_FIRST = 12000  # held-out lines [TEST_FIRST, TEST_FIRST + TEST_LINES) are test texts
TEST_LINES = 200
VOCAB_SIZE = 2000
SPACE = "\u2581"  # "▁", SentencePiece's whitespace marker

# Single-line texts (spm_encode can take them) that stress the edges: spaces at
# either end and in runs, tabs, characters outside the vocab (byte fallback:
# CJK, emoji, accented letters, ASCII symbols and capitals Brown lacks),
# combining marks, digits, the marker itself, text that looks like a byte
# token, long words, and the empty string. `"roundtrip": false` marks the
# texts decode cannot give back (the marker decodes to a space, as in
# Hugging Face and SentencePiece).
ADVERSARIAL = [
    "",
    " ",
    "   ",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "multiple   inner    spaces and\ttabs\t\there",
    "\tleading tab",
    "東京は日本の首都です。",
    "mixed 東京 and English 中文字符 text",
    "emoji: I \u2764\ufe0f tokens \U0001F642 \U0001F44D\U0001F3FD!",
    "Zürich naïve café résumé Ångström",
    "combining: e\u0301 n\u0303 a\u0308\u0304 Z\u0327",
    "digits 0123456789 3.14159 2,000,000 1961-1962",
    "!!! $$$ &&& %%% @@@ ^^^ ~~~ ||| {} [] <>",
    "ZQX zzz qqq XYZ Zebra Quixotic Xylophone",
    "<0x41> looks like a byte token <0xZZ> <0x>",
    "a" * 300,
    "the" * 120,
    " the the the the the the the the the the ",
    "ideographic\u3000space and no\u00a0break space",
    "zero\u200bwidth\u200djoiner",
    "\u0000 nul and \u007f del and \u001b escape",
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary",
    # Pieces with two cuts that can overlap ("ere" = "er"+"e" = "e"+"re"):
    # where ties between cuts of one piece could order merges differently.
    "erere ererere there here were enenene 0000000 100000 ",
]
NOT_ROUNDTRIP = [
    "marker\u2581in\u2581text",
    "\u2581leading marker",
]
# Texts with a newline or carriage return (see the module comment).
MULTILINE = [
    "line one\nline two",
    "\n",
    "\n\n  indented\n\tand tabbed\n",
    "windows\r\nline ends\r\n",
    "ends with a newline\n",
    "東京\n🙂\n",
]


# ---------------------------------------------------------------- protobuf

def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def read_model(path):
    """Pieces [(piece, score, type)] and the specs we check, from a .model.

    ModelProto: pieces = 1, trainer_spec = 2, normalizer_spec = 3.
    SentencePiece: piece = 1, score = 2, type = 3 (NORMAL 1, UNKNOWN 2,
    CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6).
    TrainerSpec: model_type = 3 (BPE 2), byte_fallback = 35, unk_piece = 45.
    NormalizerSpec: name = 1, add_dummy_prefix = 3,
    remove_extra_whitespaces = 4, escape_whitespaces = 5.
    """
    with open(path, "rb") as f:
        buf = f.read()
    pieces, trainer, normalizer = [], {}, {}
    for field, _, value in _fields(buf):
        if field == 1:
            piece, score, kind = "", 0.0, 1
            for f2, _, v2 in _fields(value):
                if f2 == 1:
                    piece = v2.decode("utf-8")
                elif f2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    kind = v2
            pieces.append((piece, score, kind))
        elif field == 2:
            trainer = {f2: v2 for f2, _, v2 in _fields(value)}
        elif field == 3:
            normalizer = {f2: v2 for f2, _, v2 in _fields(value)}
    return pieces, trainer, normalizer


# ------------------------------------------------------------- conversion

def derive_merges(pieces):
    """Merges as Hugging Face's SentencePieceExtractor derives them for Llama.

    Every way to cut a piece into two pieces of the vocab is a merge. Merges
    are ordered by the merged piece's score, highest first; cuts of one piece
    by (id of the left part, id of the right part); equal scores keep vocab
    (id) order.
    """
    ids = {}
    for i, (piece, _, _) in enumerate(pieces):
        ids.setdefault(piece, i)
    merges = []
    for piece, score, _ in pieces:
        cuts = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in ids and right in ids:
                cuts.append((ids[left], ids[right], left, right))
        cuts.sort()
        merges.extend((score, left, right) for _, _, left, right in cuts)
    merges.sort(key=lambda m: -m[0])  # stable: ties keep the order above
    return [left + " " + right for _, left, right in merges]


def tokenizer_json(pieces):
    control = [(i, p) for i, (p, _, kind) in enumerate(pieces) if kind in (2, 3)]
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, p in control]
    bos_id, bos = next((i, p) for i, p in control if p == "<s>")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "vocab": {p: i for i, (p, _, _) in enumerate(pieces)},
            "merges": derive_merges(pieces),
        },
    }


# ------------------------------------------------------------------- main

def spm_ids(model, texts, tmp):
    for t in texts:
        assert "\n" not in t and "\r" not in t, repr(t)
    src = os.path.join(tmp, "texts.txt")
    with open(src, "w", encoding="utf-8", newline="\n") as f:
        for t in texts:
            f.write(t + "\n")
    out = subprocess.run(["spm_encode", "--model=" + model, "--output_format=id", "--input=" + src],
                         check=True, capture_output=True).stdout.decode("utf-8")
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == len(texts) + 1, (len(lines), len(texts))
    return [[int(x) for x in line.split()] for line in lines[:-1]]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/sp_bpe"
    with open(CORPUS, encoding="utf-8") as f:
        lines = f.read().split("\n")
    held_out = [l for l in lines[TEST_FIRST:TEST_FIRST + TEST_LINES] if l]
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train = os.path.join(tmp, "train.txt")
        with open(train, "w", encoding="utf-8") as f:
            f.write("\n".join(lines[:TRAIN_LINES]) + "\n")
        prefix = os.path.join(tmp, "sp")
        # Relative paths: the model records them, and the file stays reproducible.
        subprocess.run(["spm_train", "--input=train.txt", "--model_prefix=sp",
                        "--model_type=bpe", "--vocab_size=%d" % VOCAB_SIZE,
                        "--byte_fallback=true", "--normalization_rule_name=identity",
                        "--remove_extra_whitespaces=false", "--max_sentence_length=16384",
                        "--num_threads=1", "--minloglevel=2"], check=True, cwd=tmp)
        model = prefix + ".model"
        pieces, trainer, normalizer = read_model(model)
        assert trainer.get(3) == 2, "not a BPE model"
        assert trainer.get(35) == 1, "no byte fallback"
        assert normalizer.get(1) == b"identity", normalizer.get(1)
        assert normalizer.get(4) == 0, "extra whitespace would be removed"
        assert [p for p, _, _ in pieces[:3]] == ["<unk>", "<s>", "</s>"]
        assert sum(1 for _, _, kind in pieces if kind == 6) == 256, "byte pieces missing"

        texts = held_out + ADVERSARIAL + NOT_ROUNDTRIP
        ids = spm_ids(model, texts, tmp)
        expected = {
            "comment": "spm_encode --output_format=id of each text with tokenizer.model; "
                       "written by tools/sp_bpe_reference.py",
            "texts": [{"text": t, "ids": i, "roundtrip": t not in NOT_ROUNDTRIP}
                      for t, i in zip(texts, ids)],
            "multiline_texts": MULTILINE,
        }
        shutil.copyfile(model, os.path.join(out_dir, "tokenizer.model"))
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(pieces), f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out_dir, "expected_ids.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %d pieces, %d texts to %s" % (len(pieces), len(texts), out_dir))


if __name__ == "__main__":
    main()
