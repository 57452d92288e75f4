//! Text descriptors: numbers computed from each text of a `text` column, as Evidently 0.7.23
//! computes them, so that a text column can be tested for drift like numerical columns.
//!
//! The four [`Descriptor`]s are the ones Evidently computes without a downloaded corpus or a
//! model: text length, word count, non-letter character percentage and sentence count. Evidently
//! has one implementation of each, the legacy feature's `apply` in
//! `evidently/legacy/features/*_feature.py`, applied row by row with pandas' `Series.apply`
//! (`ApplyColumnGeneratedFeature.generate_feature`, `legacy/features/generated_features.py:164`).
//! Every other entry point uses the same code: the legacy descriptors
//! (`legacy/descriptors/*_descriptor.py`) return those features, the new API's
//! `NonLetterCharacterPercentage`, `SentenceCount` and `WordCount`
//! (`evidently/descriptors/generated_descriptors.py:445`, `:576`, `:632`) wrap them, and the new
//! API's `TextLength` (`evidently/descriptors/_text_length.py:37`) is a copy of the legacy rule.
//!
//! Evidently's rules are Python's, and several differ from Rust's std: `len()` counts code
//! points, `str.isalpha()` is the general categories Lu, Ll, Lt, Lm and Lo (Rust's
//! `char::is_alphabetic` is the wider Alphabetic property: also Nl such as Ⅻ and the
//! Other_Alphabetic marks such as the Devanagari vowel sign ि), and the `re` classes `\w` and
//! `\s` are Python's own (`\w` is `str.isalnum()` or "_": Ⅻ and ² are `\w` but no letters). Those
//! classes are read from Python itself into a generated table (`text_descriptors/
//! python_unicode.rs`, written by `python_unicode.py` beside it) of Python 3.11's Unicode
//! ([`UNICODE_VERSION`]); a code point that a later Unicode assigns is classed as Python 3.11
//! classes it (Evidently on a newer Python may class it differently; the table and the golden
//! fixture are regenerated together).
//!
//! A missing text (`None`; Evidently's `None` or float NaN) gives 0 for every descriptor, never
//! NaN: a missing text counts in the drift test as a text of length 0. The one value Evidently
//! cannot produce is the non-letter percentage of the empty string (it divides by zero and the
//! whole report fails); [`Descriptor::of`] gives NaN there, which the drift layer drops like a
//! missing value.
//!
//! # How Evidently tests the descriptors for drift
//!
//! `TextDescriptorsDriftMetric` (`evidently/legacy/metrics/data_drift/
//! text_descriptors_drift_metric.py`) computes the descriptors of the reference and the current
//! texts and declares every descriptor column numerical (`ColumnMapping(numerical_features=…)`,
//! line 127; `recognize_column_type_` then answers numerical, `legacy/utils/data_operations.py:201`).
//! Each column goes through `get_one_column_drift` like any numerical feature, so the analyzer
//! reuses [`crate::drift::column_drift`] with `kind: Some(ColumnKind::Numerical)` and
//! `ColumnData::Numerical { integer: descriptor.integer(), .. }`:
//!
//! - No stattest given: Evidently's default choice (`legacy/calculations/stattests/
//!   registry.py:137`), which looks at the distinct values of reference and current together even
//!   though the column is forced numerical. With at most 1000 reference rows: more than 5
//!   distinct values → `ks`, 3–5 → `chisquare`, 1–2 → `z`; above 1000: more than 5 →
//!   `wasserstein`, otherwise `jensenshannon`. Sentence and word counts of short texts often have
//!   5 values or fewer, so their test is a count test, not `ks`.
//! - A `stattest` and `stattest_threshold` given to the metric apply to every descriptor.
//! - The three counts are pandas `int64` columns, the percentage `float64`
//!   ([`Descriptor::integer`]), and numpy floors the width of an integer column's histogram bins
//!   at 1. The default choice never bins a descriptor (its `jensenshannon` comes only with at
//!   most 5 distinct values, which Evidently counts one bin per value), but a given `hellinger`
//!   does: a count with 2 or 3 distinct values gets a single bin, so e.g. sentence counts of 1
//!   and 2 never drift under it. `psi`, `kl_div` and `jensenshannon` bin only a column with more
//!   than 20 distinct reference values, where the floor matters above 2¹⁹ rows.
//! - Missing texts are 0, not NaN, so nothing is dropped before the test.
//! - The metric's `dataset_drift` calls `get_dataset_drift(…, 0)` (line 147): a share of drifted
//!   descriptors ≥ 0, so it is always true, whatever drifted. Per-descriptor verdicts are the
//!   meaningful result.
//! - Its default descriptors are "Text Length", "Non Letter Character %" and "OOV %" (line 81);
//!   OOV needs NLTK's downloaded word list and is not computed here.
//!
//! The new API's `ValueDrift` on a descriptor column (`evidently/metrics/column_statistics.py:
//! 575`) runs the same `get_one_column_drift` with the column numerical and gives the same
//! results.
//!
//! Agreement with Evidently, checked by `tests/text_descriptors_golden.rs` on the fixture that
//! `analyzer/golden/text_descriptors.py` generates by running Evidently (hand-made edge cases,
//! code points at every boundary of the table, CPython's CJK sample texts and Python's bundled
//! documentation): every descriptor value bit for bit; in the drift cases every stattest,
//! threshold and verdict equal and every score within 1e-12 relative (observed 5e-14).

mod python_unicode;

pub use python_unicode::UNICODE_VERSION;

/// A number Evidently computes from one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Descriptor {
    /// Evidently's `TextLength`: [`text_length`].
    TextLength,
    /// Evidently's `WordCount`: [`word_count`].
    WordCount,
    /// Evidently's `NonLetterCharacterPercentage`: [`non_letter_character_percentage`], a
    /// percentage (0–100), not a share.
    NonLetterCharacterPercentage,
    /// Evidently's `SentenceCount`: [`sentence_count`].
    SentenceCount,
}

impl Descriptor {
    /// Every descriptor, in the order of [`Descriptor`]'s variants.
    pub const ALL: [Descriptor; 4] = [
        Descriptor::TextLength,
        Descriptor::WordCount,
        Descriptor::NonLetterCharacterPercentage,
        Descriptor::SentenceCount,
    ];

    /// The descriptor's column suffix, as in `review.text_length`: "text_length" (the new API
    /// `TextLength`'s default alias), "word_count", "non_letter_character_percentage" and
    /// "sentence_count" (Evidently's class names in snake case; its own columns are display
    /// names such as "Word Count for review").
    pub fn name(self) -> &'static str {
        match self {
            Descriptor::TextLength => "text_length",
            Descriptor::WordCount => "word_count",
            Descriptor::NonLetterCharacterPercentage => "non_letter_character_percentage",
            Descriptor::SentenceCount => "sentence_count",
        }
    }

    /// The descriptor named `name` (see [`Descriptor::name`]).
    pub fn from_name(name: &str) -> Option<Descriptor> {
        Descriptor::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether Evidently's column of this descriptor has an integer dtype (pandas `int64`):
    /// true for the three counts, false for the percentage. Pass it as
    /// `ColumnData::Numerical::integer`.
    pub fn integer(self) -> bool {
        self != Descriptor::NonLetterCharacterPercentage
    }

    /// The descriptor of one text; 0 for a missing text, NaN only for the non-letter percentage
    /// of the empty string (Evidently raises there).
    pub fn of(self, text: Option<&str>) -> f64 {
        let Some(text) = text else { return 0.0 };
        match self {
            Descriptor::TextLength => text_length(text) as f64,
            Descriptor::WordCount => word_count(text) as f64,
            Descriptor::NonLetterCharacterPercentage => non_letter_character_percentage(text),
            Descriptor::SentenceCount => sentence_count(text) as f64,
        }
    }

    /// [`Descriptor::of`] each text, in order.
    pub fn column(self, texts: &[Option<&str>]) -> Vec<f64> {
        texts.iter().map(|&t| self.of(t)).collect()
    }
}

/// Number of code points, Python's `len(text)` (`legacy/features/text_length_feature.py:23`).
///
/// Cost: one pass over the bytes.
pub fn text_length(text: &str) -> usize {
    text.chars().count()
}

/// Number of words after deleting every character but ASCII letters and the space:
/// `len(re.sub(r"[^a-zA-Z ]+", "", text).split())` (`legacy/features/word_count_feature.py:17`,
/// `:28`). So a word is a run of ASCII letters between spaces, whatever else stands inside it:
/// "don't" and "e-mail" are one word, "line\nbreak" and "tab\tbed" too (newlines and tabs are
/// deleted, not split on), "café" is one word and "été" one ("t" survives), digits and
/// non-Latin scripts count nothing.
///
/// Cost: one pass over the bytes (no byte of a multi-byte UTF-8 sequence is ASCII).
pub fn word_count(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for b in text.bytes() {
        if b.is_ascii_alphabetic() {
            words += usize::from(!in_word);
            in_word = true;
        } else if b == b' ' {
            in_word = false;
        }
    }
    words
}

/// Percentage (0–100) of the code points that are neither a letter (Python's `str.isalpha()`)
/// nor the space U+0020: `100 * n / len(text)`
/// (`legacy/features/non_letter_character_percentage_feature.py:23`). Tabs, newlines, non-breaking
/// spaces, digits, punctuation, emoji and combining marks all count as non-letters. NaN for the
/// empty string, where Evidently raises `ZeroDivisionError`.
///
/// `100 * n` and the length are exact integers that a double holds (below 2⁵³), and Python
/// divides them as doubles, so the quotient is Python's to the bit.
///
/// Cost: one pass over the code points; a binary search of the generated table (ten
/// comparisons) for each one outside ASCII.
pub fn non_letter_character_percentage(text: &str) -> f64 {
    let mut len = 0u64;
    let mut non_letters = 0u64;
    for c in text.chars() {
        len += 1;
        non_letters += u64::from(c != ' ' && class(c) != Class::Letter);
    }
    if len == 0 {
        return f64::NAN;
    }
    (100 * non_letters) as f64 / len as f64
}

/// Number of pieces `re.split` cuts the text into, at least 1
/// (`legacy/features/sentence_count_feature.py:17`, `:28`), with Evidently's pattern
/// `(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s`: a sentence ends at a whitespace character
/// (Python's `\s`) that follows `.` or `?`, unless the three characters before it are an ASCII
/// capital, an ASCII small letter and `.` ("Dr. ", "Mr. ", but also "Hi. " and "Go. ") or the
/// four before it are a word character (Python's `\w`), `.`, a word character and any character
/// ("e.g. ", "i.e. ").
///
/// So `!` ends no sentence, a trailing ". " starts an empty one ("Done. " is 2), "..." ends one,
/// and the empty or whitespace-only text is 1 sentence.
///
/// Cost: one pass over the code points, keeping the four before; class look-ups only after a
/// `.` or `?`.
pub fn sentence_count(text: &str) -> usize {
    // '\0' stands for "before the start": it matches none of the pattern's classes, so a
    // look-behind reaching past the start fails as Python's does.
    let (mut p4, mut p3, mut p2, mut p1) = ('\0', '\0', '\0', '\0');
    let mut cuts = 0;
    for c in text.chars() {
        if (p1 == '.' || p1 == '?') && class(c) == Class::Space {
            let title_abbreviation = p3.is_ascii_uppercase() && p2.is_ascii_lowercase() && p1 == '.';
            let dotted_abbreviation = p3 == '.' && is_word(p4) && is_word(p2);
            cuts += usize::from(!title_abbreviation && !dotted_abbreviation);
        }
        (p4, p3, p2, p1) = (p3, p2, p1, c);
    }
    cuts + 1
}

/// The classes of Python's character tests that the descriptors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `str.isalpha()`: general category Lu, Ll, Lt, Lm or Lo. Also `\w`.
    Letter,
    /// `re`'s `\w` without the letters: `str.isalnum()` or "_".
    Word,
    /// `re`'s `\s`: `str.isspace()`.
    Space,
    /// Anything else.
    Other,
}

/// The class of `c` as Python 3.11 sees it.
fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' | '_' => Class::Word,
            '\t'..='\r' | '\x1c'..='\x1f' | ' ' => Class::Space,
            _ => Class::Other,
        };
    }
    let c = u32::from(c);
    let runs = &python_unicode::RUNS;
    let i = runs.partition_point(|&(_, last, _)| last < c);
    match runs.get(i) {
        Some(&(first, _, class)) if first <= c => class,
        _ => Class::Other,
    }
}

/// Python's `\w`.
fn is_word(c: char) -> bool {
    matches!(class(c), Class::Letter | Class::Word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fast_path_matches_the_table() {
        for b in 0u8..128 {
            let c = char::from(b);
            let u = u32::from(b);
            let i = python_unicode::RUNS.partition_point(|&(_, last, _)| last < u);
            let table = match python_unicode::RUNS.get(i) {
                Some(&(first, _, class)) if first <= u => class,
                _ => Class::Other,
            };
            assert_eq!(class(c), table, "{c:?}");
        }
    }

    #[test]
    fn table_runs_are_sorted_and_disjoint() {
        let runs = &python_unicode::RUNS;
        assert!(runs.iter().all(|&(first, last, _)| first <= last && last <= 0x10FFFF));
        assert!(runs.windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn python_classes_not_rust_ones() {
        // Devanagari vowel sign I: Mc and Other_Alphabetic, so Alphabetic in Rust; neither a
        // letter nor \w in Python. The combining acute is neither in both.
        assert!('\u{93F}'.is_alphabetic());
        assert_eq!(class('\u{93F}'), Class::Other);
        assert_eq!(class('\u{301}'), Class::Other);
        // Roman numeral twelve: Nl, Alphabetic in Rust; \w but no letter in Python.
        assert!('Ⅻ'.is_alphabetic());
        assert_eq!(class('Ⅻ'), Class::Word);
        assert_eq!(class('é'), Class::Letter);
        assert_eq!(class('字'), Class::Letter);
        assert_eq!(class('²'), Class::Word);
        assert_eq!(class('\u{a0}'), Class::Space);
        assert_eq!(class('\u{3000}'), Class::Space);
        // Zero-width space and joiner: neither space nor word in Python.
        assert_eq!(class('\u{200b}'), Class::Other);
        assert_eq!(class('\u{200d}'), Class::Other);
    }

    #[test]
    fn text_length_counts_code_points() {
        assert_eq!(text_length(""), 0);
        assert_eq!(text_length("e\u{301}"), 2);
        assert_eq!(text_length("naïve 字"), 7);
        assert_eq!(text_length("👍🏽"), 2);
    }

    #[test]
    fn word_count_keeps_ascii_letters_and_spaces_only() {
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("   "), 0);
        assert_eq!(word_count("Hello, world!"), 2);
        assert_eq!(word_count("don't e-mail me"), 3);
        assert_eq!(word_count("line\nbreak tab\tbed"), 2);
        assert_eq!(word_count("café été 2024 字"), 2);
        assert_eq!(word_count("a - b"), 2);
    }

    #[test]
    fn non_letter_percentage_is_a_percentage() {
        assert!(non_letter_character_percentage("").is_nan());
        assert_eq!(non_letter_character_percentage("   "), 0.0);
        assert_eq!(non_letter_character_percentage("\t"), 100.0);
        assert_eq!(non_letter_character_percentage("Hello world."), 100.0 / 12.0);
        assert_eq!(non_letter_character_percentage("e\u{301}"), 50.0);
        assert_eq!(non_letter_character_percentage("ab12"), 50.0);
    }

    #[test]
    fn sentence_count_follows_evidentlys_pattern() {
        assert_eq!(sentence_count(""), 1);
        assert_eq!(sentence_count("  "), 1);
        assert_eq!(sentence_count("One. Two? Three! Four"), 3);
        assert_eq!(sentence_count("Dr. Smith went home. He slept."), 2);
        assert_eq!(sentence_count("Done. "), 2);
        assert_eq!(sentence_count("Hi. There."), 1);
        assert_eq!(sentence_count("e.g. this and i.e. that. Done"), 2);
        assert_eq!(sentence_count("Wait... what?\nYes."), 3);
        assert_eq!(sentence_count("End.\u{a0}Next.\u{200b}Not"), 2);
        // The look-behinds see four code points, not bytes: "é" is a \w.
        assert_eq!(sentence_count("é.é. x"), 1);
        assert_eq!(sentence_count("-.-. x"), 2);
    }

    #[test]
    fn missing_text_is_zero_and_names_round_trip() {
        for d in Descriptor::ALL {
            assert_eq!(d.of(None), 0.0);
            assert_eq!(Descriptor::from_name(d.name()), Some(d));
        }
        let texts = [Some("Hello there. Bye."), None, Some("")];
        assert_eq!(Descriptor::SentenceCount.column(&texts), vec![2.0, 0.0, 1.0]);
        assert_eq!(Descriptor::TextLength.column(&texts), vec![17.0, 0.0, 0.0]);
    }
}
