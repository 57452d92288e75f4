#!/usr/bin/env python3
"""Generate the golden text-descriptor fixture by running Evidently's own descriptor code.

Usage (from the repository root, with the pinned environment of requirements.txt):

    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/text_descriptors.py

Writes analyzer/golden/text_descriptors.json; analyzer/tests/text_descriptors_golden.rs reads
it. Adding a case means adding a text or a drift case below, never Rust code.

Descriptor values come from Evidently 0.7.23's legacy features (TextLength, WordCount,
NonLetterCharacterPercentage, SentenceCount in evidently/legacy/features/), the code every
Evidently entry point runs: each feature's `generate_feature` over a DataFrame column (pandas'
`Series.apply` of the feature's `apply`). The new API (`Dataset.from_pandas` with the
descriptors of evidently.descriptors) must give the same columns. Where a feature raises on a
text (the non-letter percentage of ""), its `apply` is called on that text alone to record the
error.

Drift cases run the legacy Report with TextDescriptorsDriftMetric(column, descriptors={all
four}) and record, per descriptor, the stattest Evidently chose, its score, threshold and
verdict; the new API's ValueDrift on each descriptor column must give the same score.

Texts:
  edge      hand-made: empty, whitespace, missing, punctuation, abbreviations, newlines and
            other separators, digits, emoji, CJK, combining marks, Greek, Arabic, Devanagari,
            roman numerals, zero-width characters, code points newer than Python's Unicode, a
            very long text
  sweep     code points on both sides of every boundary of Python's character classes
            (str.isalpha, re's \\w and \\s), arranged so that each class decides a descriptor
  cjk       the UTF-8 sample texts of CPython's own test suite (Lib/test/cjkencodings/*-utf8.txt:
            Chinese, Japanese, Korean prose about Python)
  docs      paragraphs and lines of Python's bundled documentation (pydoc_data.topics)

Fixture format:
  evidently, python, unicode  versions that produced it (Unicode: unicodedata.unidata_version)
  descriptors                 [[name, Evidently's feature class]], in the order of "values"
  texts[]                     {"id", "text": str | null, "missing": "None" | "NaN" (null text),
                               "repeat": n (the text is `text` n times over),
                               "values": [int | "repr of a float" | {"error": ...}, one a
                                          descriptor]}
                              Percentages are strings of Python's repr so that Rust parses them
                              to the bit (serde_json without float_roundtrip may read an ulp off).
  drift[]                     {"name", "description", "reference", "current": indices into texts,
                               "stattest", "stattest_threshold": the metric's options (null: default),
                               "columns": {descriptor: {"stattest", "score", "threshold",
                                           "drifted", "n_unique"}},
                               "dataset_drift", "share_of_drifted_columns"}, or "error" when
                              Evidently's metric raises
"""

import json
import os
import random
import re
import sys
import unicodedata
import warnings
from pathlib import Path

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydoc_data.topics import topics  # noqa: E402

import evidently  # noqa: E402
import evidently.descriptors as new_descriptors  # noqa: E402
import evidently.legacy.calculations.stattests as st_module  # noqa: E402
from evidently.legacy.calculations.stattests import registry  # noqa: E402
from evidently.legacy.descriptors import NonLetterCharacterPercentage as LegacyNonLetter  # noqa: E402
from evidently.legacy.descriptors import SentenceCount as LegacySentenceCount  # noqa: E402
from evidently.legacy.descriptors import TextLength as LegacyTextLength  # noqa: E402
from evidently.legacy.descriptors import WordCount as LegacyWordCount  # noqa: E402
from evidently.legacy.features.non_letter_character_percentage_feature import NonLetterCharacterPercentage  # noqa: E402
from evidently.legacy.features.sentence_count_feature import SentenceCount  # noqa: E402
from evidently.legacy.features.text_length_feature import TextLength  # noqa: E402
from evidently.legacy.features.word_count_feature import WordCount  # noqa: E402
from evidently.legacy.metrics import TextDescriptorsDriftMetric  # noqa: E402
from evidently.legacy.pipeline.column_mapping import ColumnMapping  # noqa: E402
from evidently.legacy.report import Report as LegacyReport  # noqa: E402

OUT = Path(__file__).resolve().parent / "text_descriptors.json"
COLUMN = "review"

# Rust name -> (legacy feature, legacy descriptor, new-API descriptor).
DESCRIPTORS = {
    "text_length": (TextLength, LegacyTextLength, new_descriptors.TextLength),
    "word_count": (WordCount, LegacyWordCount, new_descriptors.WordCount),
    "non_letter_character_percentage": (NonLetterCharacterPercentage, LegacyNonLetter,
                                        new_descriptors.NonLetterCharacterPercentage),
    "sentence_count": (SentenceCount, LegacySentenceCount, new_descriptors.SentenceCount),
}

DISPLAY_TO_NAME = {obj.display_name: obj.name for obj in vars(st_module).values()
                   if isinstance(obj, registry.StatTest)}

MISSING = {"None": None, "NaN": float("nan")}


def edge_texts():
    """(id, text) pairs; None and NaN are Evidently's missing texts, a (text, n) pair is a text
    repeated n times."""
    return [
        ("empty", ""),
        ("space", " "),
        ("spaces", "   "),
        ("whitespace_mix", " \t\n\r\x0b\x0c "),
        ("none", None),
        ("nan", float("nan")),
        ("one_word", "Hello"),
        ("plain", "The package arrived on time and everything was fine."),
        ("punctuation_run", "!!!???...,,,;;;:::---"),
        ("question_exclaim", "Really?! You did that?! Wow!"),
        ("exclaim_only", "Great! Amazing! Love it!"),
        ("question_space", "Why? Because. Fine? Ok"),
        ("dr_smith", "Dr. Smith went to Washington. He arrived at 5 p.m. on Monday. Mr. Brown met him."),
        ("title_words", "Hi. There. Go. Now. OK. Fine. Ab. Cd."),
        ("non_ascii_title", "Él. Zß. Üb. Next"),
        ("eg_ie", "Use e.g. this, i.e. that. U.S.A. is big. A.B. testing works."),
        ("underscore_dots", "_._. x a_.b_. y"),
        ("ellipsis_dots", "Wait... What? Hello...world. Next"),
        ("ellipsis_char", "Well\u2026 ok. Fine\u2026 Done."),
        ("trailing_space", "Done. "),
        ("trailing_newline", "Ends with a newline.\n"),
        ("newlines", "First line.\nSecond line.\n\nThird line\nno period\nlast."),
        ("crlf", "Windows line.\r\nNext line.\r\n"),
        ("tabs", "Tab.\tNext\tcol2\tcol3. End"),
        ("separators", "A.\x1cB. C.\x1dD.\x1e E.\x1fF.\x85G.\u2028H.\u2029I."),
        ("nbsp_like", "End.\u00a0Next.\u202fMore.\u3000Then.\u2009Thin.\u200bZero width."),
        ("digits", "3.14 is pi. 2. Item two. 1.5. x Version 1.2.3. Released 2024."),
        ("number_end", "It costs 5. Next one is 10? Sure."),
        ("url_email", "Visit https://example.com/a.b?c=d. Then mail a.b@c.de. Ok"),
        ("code", "def f(x): return x ** 2  # squares. print(f(3))"),
        ("emoji", "Great product \U0001F44D\U0001F3FD! Love it \U0001F60D. Would buy again \U0001F6D2."),
        ("emoji_zwj", "Family \U0001F468\u200d\U0001F469\u200d\U0001F467 and flag \U0001F1E9\U0001F1EA."),
        ("zwj_zwnj", "a\u200db c\u200cd"),
        ("chinese", "这是一个句子。这是另一个句子！还有吗？有。"),
        ("japanese", "日本語のテキストです。カタカナも。ｶﾀｶﾅ半角。"),
        ("korean", "한국어 문장입니다. 두 번째 문장? 네."),
        ("combining_decomposed", "Cafe\u0301 au lait. Nai\u0308ve. e\u0301"),
        ("combining_precomposed", "Caf\u00e9 au lait. Na\u00efve. \u00e9"),
        ("greek", "Η γρήγορη καφέ αλεπού πηδάει. Γιατί\u037e Ναι. ΑΒΓ αβγ."),
        ("arabic", "مرحبا بالعالم. كيف حالك؟ مَرْحَبًا. ١٢٣"),
        ("hebrew", "שלום עולם. מה שלומך? טוב."),
        ("devanagari", "नमस्ते दुनिया। यह एक वाक्य है। क्या? हाँ. किताब."),
        ("thai", "สวัสดีครับ ประโยคที่สอง."),
        ("cyrillic", "Привет, мир. Как дела? Хорошо. Ёж."),
        ("roman_numerals", "Chapter \u216b. Part \u2163. \u216b.\u2163. x \u2160\u2161\u2162"),
        ("other_numbers", "\u00bd cup. \u2460 first. \u00b2 squared. \u0663 three. \u3007 zero."),
        ("letter_categories", "\u01c5 Lt. \u02b0 Lm. \u00aa Lo. \U0001D400\U0001D401 math. \U00010330\U00010341 gothic."),
        ("marks", "\u093f\u0941\u0345\u0301\u20dd \u0903"),
        ("unicode15", "Kawi \U00011f04\U00011f05. New \U0001F6DC emoji. \u0cf3 sign."),
        ("symbols", "\u00a9 \u00ae \u2122 \u20ac 100 \u00b0C \u2192 \u221e \u2713"),
        ("nul", "a.\x00b. c"),
        ("only_nonletters", "1234567890"),
        ("mixed_scripts", "Hello мир 世界 مرحبا नमस्ते. End? Yes."),
        ("very_long", ("The quick brown fox jumps over the lazy dog. Dr. Who? e.g. 3.14! ", 20000)),
    ]


def sweep_texts():
    """Code points on both sides of every boundary of Python's classes, three ways: alone (the
    non-letter percentage sees str.isalpha), as "c.c. " (the sentence pattern's \\w look-behind)
    and as "1.c" (its \\s). 48 code points a text."""
    word, space = re.compile(r"\w"), re.compile(r"\s")

    def key(c):
        ch = chr(c)
        return (ch.isalpha(), word.match(ch) is not None, space.match(ch) is not None)

    points, prev = [], key(0)
    for c in range(1, 0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        k = key(c)
        if k != prev:
            points += [c - 1, c]
            prev = k
    points = sorted({p for p in points if not 0xD800 <= p <= 0xDFFF})
    out = []
    for i in range(0, len(points), 48):
        chunk = [chr(p) for p in points[i:i + 48]]
        tag = f"U+{points[i]:04X}"
        out.append((f"letters_{tag}", "".join(chunk)))
        out.append((f"word_{tag}", "".join(f"{c}.{c}. " for c in chunk)))
        out.append((f"space_{tag}", "".join(f"1.{c}" for c in chunk)))
    return out


def cjk_texts():
    import test
    folder = Path(test.__file__).resolve().parent / "cjkencodings"
    files = sorted(folder.glob("*-utf8.txt"))
    if not files:
        raise SystemExit(f"no {folder}/*-utf8.txt: this Python lacks its test suite")
    seen, out = set(), []
    for f in files:
        text = f.read_bytes().decode("utf-8")
        if text not in seen:
            seen.add(text)
            out.append((f.name.removesuffix("-utf8.txt"), text))
    return out


def doc_paragraphs():
    """Paragraphs of the bundled documentation, stripped, deduplicated, in topic order."""
    seen, out = set(), []
    for name in sorted(topics):
        for p in topics[name].split("\n\n"):
            p = p.strip()
            if p and p not in seen:
                seen.add(p)
                out.append((name, p))
    return out


def doc_lines():
    """Non-empty lines of the bundled documentation, stripped, deduplicated."""
    seen, out = set(), []
    for name in sorted(topics):
        for line in topics[name].split("\n"):
            line = line.strip()
            if line and line not in seen:
                seen.add(line)
                out.append((name, line))
    return out


class Texts:
    """The fixture's texts, each stored once; drift cases refer to them by index."""

    def __init__(self):
        self.entries, self.index = [], {}

    def add(self, ident, text):
        key = repr(text)
        if key in self.index:
            return self.index[key]
        entry = {"id": ident}
        if isinstance(text, tuple):
            entry["text"], entry["repeat"] = text
        elif text is None or isinstance(text, float):
            entry["text"], entry["missing"] = None, "None" if text is None else "NaN"
        else:
            entry["text"] = text
        self.index[key] = len(self.entries)
        self.entries.append(entry)
        return self.index[key]

    def python(self, i):
        e = self.entries[i]
        if e["text"] is None:
            return MISSING[e["missing"]]
        return e["text"] * e.get("repeat", 1)


def enc(value):
    if isinstance(value, (int, np.integer)):
        return int(value)
    return repr(float(value))


def descriptor_values(texts):
    """Every descriptor of every text, by Evidently's features; cross-checked with the new API."""
    values = [texts.python(i) for i in range(len(texts.entries))]
    frame = pd.DataFrame({COLUMN: pd.Series(values, dtype=object)})
    per_text = [{} for _ in values]
    ok = pd.Series(True, index=frame.index)
    for name, (feature_cls, _, _) in DESCRIPTORS.items():
        feature = feature_cls(COLUMN)
        try:
            column = feature.generate_feature(frame, None).iloc[:, 0]
            errors = {}
        except Exception:
            errors = {}
            for i, v in enumerate(values):
                try:
                    feature.apply(v)
                except Exception as e:
                    errors[i] = f"{type(e).__name__}: {e}"
            rows = [i for i in range(len(values)) if i not in errors]
            column = feature.generate_feature(frame.iloc[rows], None).iloc[:, 0]
            ok.iloc[list(errors)] = False
        for i, v in column.items():
            per_text[i][name] = enc(v)
        for i, e in errors.items():
            per_text[i][name] = {"error": e}
    check_new_api(frame[ok], per_text)
    for entry, v in zip(texts.entries, per_text):
        entry["values"] = [v[name] for name in DESCRIPTORS]


def check_new_api(frame, per_text):
    from evidently import DataDefinition, Dataset

    descriptors = [new(COLUMN, alias=name) for name, (_, _, new) in DESCRIPTORS.items()]
    data = Dataset.from_pandas(frame, data_definition=DataDefinition(text_columns=[COLUMN]),
                               descriptors=descriptors).as_dataframe()
    for name in DESCRIPTORS:
        for i, v in data[name].items():
            assert enc(v) == per_text[i][name], (name, i, v, per_text[i][name])


def run_drift(texts, name, description, reference, current, stattest=None, threshold=None):
    ref = pd.DataFrame({COLUMN: pd.Series([texts.python(i) for i in reference], dtype=object)})
    cur = pd.DataFrame({COLUMN: pd.Series([texts.python(i) for i in current], dtype=object)})
    case = {"name": name, "description": description, "stattest": stattest, "stattest_threshold": threshold,
            "reference": reference, "current": current}
    metric = TextDescriptorsDriftMetric(COLUMN, descriptors={n: d() for n, (_, d, _) in DESCRIPTORS.items()},
                                        stattest=stattest, stattest_threshold=threshold)
    report = LegacyReport(metrics=[metric])
    try:
        report.run(reference_data=ref, current_data=cur, column_mapping=ColumnMapping(text_features=[COLUMN]))
        result = metric.get_result()
    except Exception as e:  # Evidently refuses the texts: record why
        case["error"] = f"{type(e).__name__}: {e}"
        return case
    columns = {}
    for d, r in result.drift_by_columns.items():
        assert r.column_type == "num", (name, d, r.column_type)
        both = pd.concat([feature_column(d, ref), feature_column(d, cur)])
        columns[d] = {"stattest": DISPLAY_TO_NAME[r.stattest_name], "score": float(r.drift_score),
                      "threshold": float(r.stattest_threshold), "drifted": bool(r.drift_detected),
                      "n_unique": int(both.nunique())}
    case["columns"] = columns
    case["dataset_drift"] = bool(result.dataset_drift)
    case["share_of_drifted_columns"] = float(result.share_of_drifted_columns)
    check_value_drift(ref, cur, columns, stattest, threshold)
    return case


def feature_column(name, frame):
    return DESCRIPTORS[name][0](COLUMN).generate_feature(frame, None).iloc[:, 0]


def check_value_drift(ref, cur, columns, stattest, threshold):
    """The new API's ValueDrift on each descriptor column gives the legacy metric's score."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    def dataset(frame):
        descriptors = [new(COLUMN, alias=name) for name, (_, _, new) in DESCRIPTORS.items()]
        return Dataset.from_pandas(frame, data_definition=DataDefinition(text_columns=[COLUMN]),
                                   descriptors=descriptors)

    metrics = [ValueDrift(column=name, method=stattest, threshold=threshold) for name in DESCRIPTORS]
    snapshot = Report(metrics).run(dataset(cur), dataset(ref))
    for name, metric in zip(DESCRIPTORS, snapshot.dict()["metrics"]):
        assert metric["value"] == columns[name]["score"], (name, metric["value"], columns[name])


def main():
    texts = Texts()
    for ident, text in edge_texts():
        texts.add(f"edge/{ident}", text)
    for ident, text in sweep_texts():
        texts.add(f"sweep/{ident}", text)
    for ident, text in cjk_texts():
        texts.add(f"cjk/{ident}", text)

    rng = random.Random(7)
    paragraphs = [(n, p) for n, p in doc_paragraphs() if len(p) <= 300]
    short = [(n, p) for n, p in paragraphs if len(p) < 60]
    lines = doc_lines()
    prose = [(n, s) for n, s in lines if s[:1].isalpha()]
    other = [(n, s) for n, s in lines if not s[:1].isalpha()]  # code, lists, tables
    rng.shuffle(prose)
    one_sentence = SentenceCount(COLUMN).apply

    def pick(pool, k, prefix):
        return [texts.add(f"{prefix}/{n}", p) for n, p in rng.sample(pool, k)]

    def split(pool, *sizes):
        out, at = [], 0
        for k in sizes:
            out.append([texts.add(f"lines/{n}", p) for n, p in pool[at:at + k]])
            at += k
        return out

    drift = []
    ref, cur = pick(paragraphs, 250, "docs"), pick(paragraphs, 250, "docs")
    drift.append(run_drift(texts, "docs_no_drift", "250 vs 250 documentation paragraphs drawn alike", ref, cur))
    drift.append(run_drift(texts, "docs_to_short", "250 documentation paragraphs vs 150 short ones "
                           "(under 60 characters)", ref, pick(short, 150, "docs")))
    large_ref, large_cur = split(prose, 1050, 300)
    drift.append(run_drift(texts, "lines_large_no_drift", "1050 vs 300 prose lines drawn alike",
                           large_ref, large_cur))
    drift.append(run_drift(texts, "lines_large_to_code", "1050 prose lines vs 250 lines of code, "
                           "lists and tables", large_ref, pick(other, 250, "lines")))
    drift.append(run_drift(texts, "prose_lines_few_sentences", "200 vs 150 prose lines: sentence counts "
                           "take 3 to 5 values", large_ref[:200], large_cur[:150]))
    # Evidently's own SentenceCount picks the lines: counts 1 and 2 only.
    ones = [i for i in large_ref if one_sentence(texts.python(i)) <= 2]
    drift.append(run_drift(texts, "prose_lines_two_counts", "120 vs 100 prose lines of at most two "
                           "sentences", ones[:120], ones[-100:]))
    # A stattest given to the metric: hellinger bins the distinct values, and a count with two or
    # three of them is where pandas' int64 dtype (numpy's bin width floor of 1) changes the bins.
    drift.append(run_drift(texts, "prose_lines_two_counts_hellinger", "prose_lines_two_counts with "
                           "stattest=hellinger", ones[:120], ones[-100:], stattest="hellinger"))
    drift.append(run_drift(texts, "docs_to_short_psi", "docs_to_short with stattest=psi, threshold 0.5",
                           ref, drift[1]["current"], stattest="psi", threshold=0.5))
    missing = [texts.add("edge/none", None), texts.add("edge/nan", float("nan")), texts.add("edge/spaces", "   ")]
    drift.append(run_drift(texts, "with_missing", "120 paragraphs vs 80 others and 27 missing (None, NaN) "
                           "or blank texts", ref[:120], ref[120:200] + [missing[i % 3] for i in range(27)]))
    cjk = [i for i, e in enumerate(texts.entries) if e["id"].startswith("cjk/")]
    edge = [i for i, e in enumerate(texts.entries)
            if e["id"].startswith("edge/") and e["id"] not in ("edge/empty", "edge/very_long")]
    drift.append(run_drift(texts, "edge_vs_docs", "the edge and CJK texts (no empty one) vs 100 "
                           "paragraphs", edge + cjk, ref[:100]))
    drift.append(run_drift(texts, "with_empty_text", "an empty text makes Evidently's non-letter "
                           "percentage divide by zero", ref[:50], ref[50:100] + [texts.add("edge/empty", "")]))

    # Descriptor values last: every text the drift cases added is covered.
    descriptor_values(texts)
    for case, test in (("prose_lines_few_sentences", "chisquare"), ("prose_lines_two_counts", "z"),
                       ("lines_large_to_code", "jensenshannon")):
        got = next(c for c in drift if c["name"] == case)["columns"]["sentence_count"]["stattest"]
        assert got == test, (case, got)

    fixture = {
        "evidently": evidently.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "unicode": unicodedata.unidata_version,
        "descriptors": [[name, cls.__name__] for name, (cls, _, _) in DESCRIPTORS.items()],
        "texts": texts.entries,
        "drift": drift,
    }
    text = json.dumps(fixture, indent=None, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # One text or drift case a line: readable diffs without indenting every value.
    text = text.replace('{"id":', '\n{"id":').replace('{"name":', '\n{"name":')
    OUT.write_text(text + "\n")
    stattests = sorted({c["stattest"] for d in drift if "columns" in d for c in d["columns"].values()})
    print(f"{OUT.name}: {len(texts.entries)} texts, {len(drift)} drift cases ({', '.join(stattests)}), "
          f"{len(text.encode()) // 1024} KiB", file=sys.stderr)


if __name__ == "__main__":
    main()
