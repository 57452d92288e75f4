//! Evidently's domain classifier for text-content drift (`abs_text_content_drift`,
//! `perc_text_content_drift`), replayed step for step from Evidently 0.7.23 and scikit-learn 1.9.
//!
//! Evidently (`calculate_text_drift_score`) labels reference texts 0 and current texts 1,
//! splits them in halves with `train_test_split(test_size=0.5, random_state=42, shuffle=True)`,
//! fits `TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")` followed by
//! `SGDClassifier(alpha=1e-4, max_iter=50, penalty="l1", loss="modified_huber",
//! random_state=42)` on the train half, and scores the test half with ROC AUC. The absolute
//! test drifts when the AUC exceeds a threshold (0.55); the percentile test when it exceeds the
//! 95th percentile of the AUCs of 1000 random classifiers (`np.random.seed`-ed as Evidently).
//!
//! Every random draw is replayed: the split through numpy's legacy `RandomState(42)`
//! ([`Mt19937`]), the classifier's per-epoch shuffles through scikit-learn's `our_rand_r`
//! seeded from `RandomState(42)` as `fit_binary` seeds it, and the random classifiers through
//! `np.random.seed` + `np.random.rand`. The TF-IDF matrix and the SGD updates follow
//! scikit-learn's order of operations (the features of a training row in order of first
//! appearance in the corpus, the L1 penalty's cumulative `u` and `q`, the intercept decay of
//! sparse input, the stopping rule on the objective with scikit-learn's partial L1 norm). So the
//! numbers agree with Evidently's to the last bits in practice; what can still differ:
//!
//! - `np.log` and Rust's `ln` may differ in the last bit (numpy's SIMD log): TF-IDF values move
//!   by an ulp, which can only change the AUC if a weight sits exactly at an L1 clipping edge;
//! - Python's `\w` counts letters by general category (L*), Rust's `is_alphanumeric` also takes
//!   combining marks that Unicode calls alphabetic (e.g. Devanagari vowel signs): texts in such
//!   scripts tokenize differently; Latin, Greek, Cyrillic, CJK and digits tokenize the same;
//! - the ROC AUC is computed from midranks (the Mann-Whitney form) instead of scikit-learn's
//!   trapezoids: the same number up to rounding (≈1e-15).

use super::mt19937::Mt19937;
use super::{Error, Result};
use std::collections::HashMap;

/// scikit-learn's `ENGLISH_STOP_WORDS` (318 words), sorted for binary search.
const ENGLISH_STOP_WORDS: [&str; 318] = [
    "a",
    "about",
    "above",
    "across",
    "after",
    "afterwards",
    "again",
    "against",
    "all",
    "almost",
    "alone",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "amongst",
    "amoungst",
    "amount",
    "an",
    "and",
    "another",
    "any",
    "anyhow",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "around",
    "as",
    "at",
    "back",
    "be",
    "became",
    "because",
    "become",
    "becomes",
    "becoming",
    "been",
    "before",
    "beforehand",
    "behind",
    "being",
    "below",
    "beside",
    "besides",
    "between",
    "beyond",
    "bill",
    "both",
    "bottom",
    "but",
    "by",
    "call",
    "can",
    "cannot",
    "cant",
    "co",
    "con",
    "could",
    "couldnt",
    "cry",
    "de",
    "describe",
    "detail",
    "do",
    "done",
    "down",
    "due",
    "during",
    "each",
    "eg",
    "eight",
    "either",
    "eleven",
    "else",
    "elsewhere",
    "empty",
    "enough",
    "etc",
    "even",
    "ever",
    "every",
    "everyone",
    "everything",
    "everywhere",
    "except",
    "few",
    "fifteen",
    "fifty",
    "fill",
    "find",
    "fire",
    "first",
    "five",
    "for",
    "former",
    "formerly",
    "forty",
    "found",
    "four",
    "from",
    "front",
    "full",
    "further",
    "get",
    "give",
    "go",
    "had",
    "has",
    "hasnt",
    "have",
    "he",
    "hence",
    "her",
    "here",
    "hereafter",
    "hereby",
    "herein",
    "hereupon",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "hundred",
    "i",
    "ie",
    "if",
    "in",
    "inc",
    "indeed",
    "interest",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "keep",
    "last",
    "latter",
    "latterly",
    "least",
    "less",
    "ltd",
    "made",
    "many",
    "may",
    "me",
    "meanwhile",
    "might",
    "mill",
    "mine",
    "more",
    "moreover",
    "most",
    "mostly",
    "move",
    "much",
    "must",
    "my",
    "myself",
    "name",
    "namely",
    "neither",
    "never",
    "nevertheless",
    "next",
    "nine",
    "no",
    "nobody",
    "none",
    "noone",
    "nor",
    "not",
    "nothing",
    "now",
    "nowhere",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "part",
    "per",
    "perhaps",
    "please",
    "put",
    "rather",
    "re",
    "same",
    "see",
    "seem",
    "seemed",
    "seeming",
    "seems",
    "serious",
    "several",
    "she",
    "should",
    "show",
    "side",
    "since",
    "sincere",
    "six",
    "sixty",
    "so",
    "some",
    "somehow",
    "someone",
    "something",
    "sometime",
    "sometimes",
    "somewhere",
    "still",
    "such",
    "system",
    "take",
    "ten",
    "than",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "thence",
    "there",
    "thereafter",
    "thereby",
    "therefore",
    "therein",
    "thereupon",
    "these",
    "they",
    "thick",
    "thin",
    "third",
    "this",
    "those",
    "though",
    "three",
    "through",
    "throughout",
    "thru",
    "thus",
    "to",
    "together",
    "too",
    "top",
    "toward",
    "towards",
    "twelve",
    "twenty",
    "two",
    "un",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "whatever",
    "when",
    "whence",
    "whenever",
    "where",
    "whereafter",
    "whereas",
    "whereby",
    "wherein",
    "whereupon",
    "wherever",
    "whether",
    "which",
    "while",
    "whither",
    "who",
    "whoever",
    "whole",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Seed Evidently passes as `random_state` to the split, the classifier and the bootstrap.
pub const SEED: u32 = 42;
/// Random classifiers in the percentile test's bootstrap (Evidently's `iter_num`).
pub const BOOTSTRAP_ITERATIONS: usize = 1000;

const ALPHA: f64 = 1e-4;
const MAX_EPOCHS: usize = 50;
const TOL: f64 = 1e-3;
const N_ITER_NO_CHANGE: usize = 5;
/// scikit-learn's `SPARSE_INTERCEPT_DECAY`: the intercept moves 100× slower on sparse input.
const SPARSE_INTERCEPT_DECAY: f64 = 0.01;
/// Words per side reported as typical (Evidently's `words_num`).
const TYPICAL_WORDS: usize = 25;

/// The tokens scikit-learn's default word analyzer yields for `doc` with English stop words:
/// lowercase, the maximal runs of word characters (`(?u)\b\w\w+\b`, so at least two
/// characters), minus the stop words.
pub fn tokens(doc: &str) -> impl Iterator<Item = String> + '_ {
    let lower = doc.to_lowercase();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = 0usize;
    for (i, ch) in lower.char_indices().chain(std::iter::once((lower.len(), ' '))) {
        if ch.is_alphanumeric() || ch == '_' {
            if start.is_none() {
                start = Some(i);
                chars = 0;
            }
            chars += 1;
        } else if let Some(s) = start.take() {
            let word = &lower[s..i];
            if chars >= 2 && ENGLISH_STOP_WORDS.binary_search(&word).is_err() {
                out.push(word.to_string());
            }
        }
    }
    out.into_iter()
}

/// A sparse row: (feature index, value) in scikit-learn's storage order.
type Row = Vec<(u32, f64)>;

/// A fitted `TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")`.
struct Tfidf {
    /// Term → feature index (terms sorted, those in more than half the documents dropped).
    vocabulary: HashMap<String, u32>,
    idf: Vec<f64>,
}

impl Tfidf {
    /// Fits on `docs` and returns the transformed training rows, in the order scikit-learn
    /// stores them (each row's features in order of their first appearance in the corpus).
    fn fit_transform(docs: &[&str]) -> Result<(Tfidf, Vec<Row>)> {
        let mut first_seen: HashMap<String, u32> = HashMap::new();
        let mut counts: Vec<Vec<(u32, u32)>> = Vec::with_capacity(docs.len());
        for doc in docs {
            let mut row: Vec<(u32, u32)> = Vec::new();
            for token in tokens(doc) {
                let next = first_seen.len() as u32;
                let id = *first_seen.entry(token).or_insert(next);
                match row.iter_mut().find(|(f, _)| *f == id) {
                    Some((_, c)) => *c += 1,
                    None => row.push((id, 1)),
                }
            }
            row.sort_unstable_by_key(|&(f, _)| f);
            counts.push(row);
        }
        if first_seen.is_empty() {
            return Err(Error::Invalid("empty vocabulary; perhaps the documents only contain stop words".into()));
        }
        let mut df = vec![0u64; first_seen.len()];
        for row in &counts {
            for &(f, _) in row {
                df[f as usize] += 1;
            }
        }
        let max_doc_count = 0.5 * docs.len() as f64;
        let mut terms: Vec<(String, u32)> = first_seen.into_iter().collect();
        terms.sort_unstable();
        // Feature index of each first-seen id, or u32::MAX when max_df drops the term.
        let mut feature = vec![u32::MAX; df.len()];
        let mut vocabulary = HashMap::new();
        let mut idf = Vec::new();
        let n_smooth = docs.len() as f64 + 1.0;
        for (term, id) in terms {
            let d = df[id as usize];
            if d as f64 <= max_doc_count {
                feature[id as usize] = idf.len() as u32;
                vocabulary.insert(term, idf.len() as u32);
                idf.push((n_smooth / (d as f64 + 1.0)).ln() + 1.0);
            }
        }
        if idf.is_empty() {
            return Err(Error::Invalid(
                "After pruning, no terms remain. Try a lower min_df or a higher max_df.".into(),
            ));
        }
        let tfidf = Tfidf { vocabulary, idf };
        let rows = counts
            .into_iter()
            .map(|row| {
                let row: Row = row
                    .into_iter()
                    .filter(|&(id, _)| feature[id as usize] != u32::MAX)
                    .map(|(id, c)| (feature[id as usize], c as f64))
                    .collect();
                tfidf.weigh(row)
            })
            .collect();
        Ok((tfidf, rows))
    }

    /// A new document's row, features in index order (as `transform` stores them).
    fn transform(&self, doc: &str) -> Row {
        let mut row: Vec<(u32, f64)> = Vec::new();
        for token in tokens(doc) {
            if let Some(&f) = self.vocabulary.get(&token) {
                match row.iter_mut().find(|(g, _)| *g == f) {
                    Some((_, c)) => *c += 1.0,
                    None => row.push((f, 1.0)),
                }
            }
        }
        row.sort_unstable_by_key(|&(f, _)| f);
        self.weigh(row)
    }

    /// Counts → (1 + ln tf) · idf, then L2-normalised in storage order.
    fn weigh(&self, mut row: Row) -> Row {
        for (f, v) in row.iter_mut() {
            *v = (v.ln() + 1.0) * self.idf[*f as usize];
        }
        let mut sum = 0.0;
        for (_, v) in &row {
            sum += v * v;
        }
        if sum != 0.0 {
            let norm = sum.sqrt();
            for (_, v) in row.iter_mut() {
                *v /= norm;
            }
        }
        row
    }
}

/// scikit-learn's `our_rand_r` (xorshift, reduced to 31 bits), which drives the per-epoch
/// Fisher-Yates shuffle of the training rows of its SGD classifiers.
pub(crate) fn our_rand_r(seed: &mut u32) -> u32 {
    if *seed == 0 {
        *seed = 1;
    }
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    *seed % 0x8000_0000
}

fn modified_huber_loss(y: f64, p: f64) -> f64 {
    let z = p * y;
    if z >= 1.0 {
        0.0
    } else if z >= -1.0 {
        (1.0 - z) * (1.0 - z)
    } else {
        -4.0 * z
    }
}

fn modified_huber_gradient(y: f64, p: f64) -> f64 {
    let z = p * y;
    if z >= 1.0 {
        0.0
    } else if z >= -1.0 {
        2.0 * (1.0 - z) * -y
    } else {
        -4.0 * y
    }
}

/// A fitted linear classifier.
struct Linear {
    weights: Vec<f64>,
    intercept: f64,
}

/// `SGDClassifier(alpha=1e-4, max_iter=50, penalty="l1", loss="modified_huber",
/// random_state=42).fit(rows, labels)` on sparse rows, as scikit-learn's `_plain_sgd` runs it
/// (learning rate "optimal", tol 1e-3, 5 epochs without improvement stop it).
fn sgd_fit(rows: &[Row], current: &[bool], n_features: usize) -> Linear {
    // fit_binary's RandomState(42): make_dataset draws the dataset's own seed first (unused by
    // the shuffle), then the shuffle seed is randint(MAX_INT).
    let mut state = Mt19937::new(SEED);
    let _dataset_seed = state.interval(2_147_483_646 - 1) + 1;
    let seed = state.interval(2_147_483_647 - 1) as u32;

    let n = rows.len();
    let mut w = vec![0.0f64; n_features];
    let mut q = vec![0.0f64; n_features];
    let mut u = 0.0f64;
    let mut intercept = 0.0f64;
    // scikit-learn's WeightVector.l1_norm: reset by every `add` to the L1 norm of the entries
    // that sample touched (not of the whole vector); it enters the stopping objective.
    let mut l1_norm = 0.0f64;
    let mut t = 1.0f64;
    let typw = (1.0 / ALPHA.sqrt()).sqrt();
    let initial_eta0 = typw / 1.0f64.max(modified_huber_gradient(1.0, -typw));
    let optimal_init = 1.0 / (initial_eta0 * ALPHA);
    let mut index: Vec<u32> = (0..n as u32).collect();
    let mut best_objective = f64::INFINITY;
    let mut no_improvement = 0usize;
    for _epoch in 0..MAX_EPOCHS {
        let mut s = seed;
        for i in 0..n.saturating_sub(1) {
            let j = i + (our_rand_r(&mut s) % (n - i) as u32) as usize;
            index.swap(i, j);
        }
        let mut objective_sum = 0.0f64;
        for &sample in &index {
            let row = &rows[sample as usize];
            let y = if current[sample as usize] { 1.0 } else { -1.0 };
            let mut dot = 0.0;
            for &(f, v) in row {
                dot += w[f as usize] * v;
            }
            let p = dot + intercept;
            let eta = 1.0 / (ALPHA * (optimal_init + t - 1.0));
            objective_sum += modified_huber_loss(y, p);
            // (1 - l1_ratio) · ½‖w‖² is 0 · finite for the L1 penalty.
            objective_sum += ALPHA * (0.0 + l1_norm);
            let dloss = modified_huber_gradient(y, p).clamp(-1e12, 1e12);
            let update = -eta * dloss;
            if update != 0.0 {
                let mut l1 = 0.0;
                for &(f, v) in row {
                    let wf = &mut w[f as usize];
                    *wf += v * update;
                    l1 += wf.abs();
                }
                l1_norm = l1;
                intercept += update * SPARSE_INTERCEPT_DECAY;
            }
            u += eta * ALPHA;
            for &(f, _) in row {
                let (wf, qf) = (&mut w[f as usize], &mut q[f as usize]);
                let z = *wf;
                if z > 0.0 {
                    *wf = 0.0f64.max(*wf - (u + *qf));
                } else if z < 0.0 {
                    *wf = 0.0f64.min(*wf + (u - *qf));
                }
                *qf += *wf - z;
            }
            t += 1.0;
        }
        let objective = objective_sum / n as f64;
        if objective > best_objective - TOL {
            no_improvement += 1;
        } else {
            no_improvement = 0;
        }
        if objective < best_objective {
            best_objective = objective;
        }
        if no_improvement >= N_ITER_NO_CHANGE {
            break;
        }
    }
    Linear { weights: w, intercept }
}

/// ROC AUC of `scores` for the positive labels (`true`), ties counted half: the area
/// `sklearn.metrics.roc_auc_score` computes, here from midranks.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Result<f64> {
    let n1 = positive.iter().filter(|p| **p).count();
    let n0 = positive.len() - n1;
    if n1 == 0 || n0 == 0 {
        return Err(Error::Invalid(
            "Only one class is present in y_true. ROC AUC score is not defined in that case.".into(),
        ));
    }
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j] as usize] == scores[order[i] as usize] {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let midrank = (i + 1 + j) as f64 / 2.0;
        let positives = order[i..j].iter().filter(|&&k| positive[k as usize]).count();
        rank_sum += midrank * positives as f64;
        i = j;
    }
    let (n1, n0) = (n1 as f64, n0 as f64);
    Ok((rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n0))
}

/// Evidently's `roc_auc_random_classifier_percentile(y_test, p_value)`: the
/// `100·(1 − p_value)` percentile (numpy's linear interpolation) of the ROC AUCs of 1000
/// classifiers scoring with `np.random.rand`, each seeded from `np.random.seed(42)` draws.
pub fn random_classifier_percentile(positive: &[bool], p_value: f64) -> Result<f64> {
    let mut state = Mt19937::new(SEED);
    let seeds: Vec<u32> =
        (0..BOOTSTRAP_ITERATIONS).map(|_| state.interval(BOOTSTRAP_ITERATIONS as u64 * 10 - 1) as u32).collect();
    let mut scores = vec![0.0f64; positive.len()];
    let mut aucs = Vec::with_capacity(seeds.len());
    for seed in seeds {
        let mut rng = Mt19937::new(seed);
        for s in scores.iter_mut() {
            *s = rng.next_f64();
        }
        aucs.push(roc_auc(positive, &scores)?);
    }
    aucs.sort_unstable_by(f64::total_cmp);
    let q = 100.0 * (1.0 - p_value) / 100.0;
    let virtual_index = (aucs.len() - 1) as f64 * q;
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let a = aucs[(previous as usize).min(aucs.len() - 1)];
    let b = aucs[(previous as usize + 1).min(aucs.len() - 1)];
    let diff = b - a;
    Ok(if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma })
}

/// What the domain classifier found.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainClassifier {
    /// ROC AUC of telling current texts (positive) from reference texts on the held-out half.
    pub roc_auc: f64,
    /// Held-out labels (`true` = current), for the percentile test's bootstrap.
    pub test_labels: Vec<bool>,
    /// Up to 25 words whose weights point most to the current data, strongest first.
    pub words_current: Vec<String>,
    /// Up to 25 words whose weights point most to the reference data, strongest first.
    pub words_reference: Vec<String>,
}

/// Trains and scores Evidently's domain classifier on `reference` (label 0) and `current`
/// (label 1) texts, already free of missing values.
pub fn domain_classifier(reference: &[&str], current: &[&str]) -> Result<DomainClassifier> {
    if reference.is_empty() {
        return Err(Error::Empty("reference"));
    }
    if current.is_empty() {
        return Err(Error::Empty("current"));
    }
    let n = reference.len() + current.len();
    let text = |i: usize| if i < reference.len() { reference[i] } else { current[i - reference.len()] };
    let n_test = n.div_ceil(2);
    let permutation = Mt19937::new(SEED).permutation(n);
    let (test, train) = permutation.split_at(n_test);
    let is_current = |i: usize| i >= reference.len();

    let train_labels: Vec<bool> = train.iter().map(|&i| is_current(i)).collect();
    if train_labels.iter().all(|&c| c == train_labels[0]) {
        return Err(Error::Invalid(
            "The number of classes has to be greater than one; got 1 class (train half)".into(),
        ));
    }
    let train_docs: Vec<&str> = train.iter().map(|&i| text(i)).collect();
    let (tfidf, rows) = Tfidf::fit_transform(&train_docs)?;
    let model = sgd_fit(&rows, &train_labels, tfidf.idf.len());

    let test_labels: Vec<bool> = test.iter().map(|&i| is_current(i)).collect();
    let probabilities: Vec<f64> = test
        .iter()
        .map(|&i| {
            let mut d = 0.0;
            for (f, v) in tfidf.transform(text(i)) {
                d += v * model.weights[f as usize];
            }
            ((d + model.intercept).clamp(-1.0, 1.0) + 1.0) / 2.0
        })
        .collect();
    let roc_auc = roc_auc(&test_labels, &probabilities)?;

    let mut names = vec![""; tfidf.idf.len()];
    for (term, &f) in &tfidf.vocabulary {
        names[f as usize] = term;
    }
    let mut weighted: Vec<(f64, usize)> =
        model.weights.iter().enumerate().filter(|(_, w)| **w != 0.0).map(|(i, w)| (*w, i)).collect();
    weighted.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let words_current = weighted.iter().take_while(|w| w.0 > 0.0).take(TYPICAL_WORDS);
    let words_current = words_current.map(|w| names[w.1].to_string()).collect();
    let words_reference = weighted.iter().rev().take_while(|w| w.0 < 0.0).take(TYPICAL_WORDS);
    let words_reference = words_reference.map(|w| names[w.1].to_string()).collect();
    Ok(DomainClassifier { roc_auc, test_labels, words_current, words_reference })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted() {
        assert!(ENGLISH_STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tokenizer_matches_sklearn_default() {
        // CountVectorizer(stop_words="english").build_analyzer()("...") in scikit-learn 1.9.
        let got: Vec<String> = tokens("The café's naïve X2 e-mail, a_b I am 42!").collect();
        assert_eq!(got, ["café", "naïve", "x2", "mail", "a_b", "42"]);
    }

    #[test]
    fn roc_auc_counts_ties_half() {
        assert_eq!(roc_auc(&[false, true], &[0.1, 0.9]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[false, true], &[0.5, 0.5]).unwrap(), 0.5);
        assert_eq!(roc_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap(), 0.75);
        assert!(roc_auc(&[true, true], &[0.1, 0.4]).is_err());
    }

    #[test]
    fn our_rand_r_reference_values() {
        let mut s = 1u32;
        // x ^= x<<13 → 8193; x ^= x>>17 → 8193; x ^= x<<5 → 270369.
        assert_eq!(our_rand_r(&mut s), 270_369);
    }
}
