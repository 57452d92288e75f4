//! The tests Evidently ships, by name, with their defaults and drift directions.

use super::{ColumnKind, Error, Prepared, Result};
use crate::stats::{self, binning};

/// A drift test, named as in Evidently 0.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatTest {
    /// Two-sample Kolmogorov-Smirnov p-value.
    Ks,
    /// Pearson chi-square p-value on category counts.
    ChiSquare,
    /// Two-proportion z-test p-value.
    Z,
    /// Population Stability Index.
    Psi,
    /// Jensen-Shannon distance on binned shares.
    JensenShannon,
    /// Wasserstein distance normed by the reference standard deviation.
    Wasserstein,
    /// Kullback-Leibler divergence on binned shares.
    KlDiv,
    /// Hellinger distance.
    Hellinger,
    /// Student's t-test p-value.
    TTest,
    /// Mann-Whitney U p-value, one-sided "less".
    MannW,
    /// k-sample Anderson-Darling significance level.
    Anderson,
    /// Two-sample Cramér-von Mises p-value.
    CramerVonMises,
    /// Energy distance.
    Ed,
    /// G-test p-value.
    GTest,
    /// Fisher's exact test p-value (binary categories, equal sample sizes).
    FisherExact,
    /// Total variation distance permutation p-value.
    Tvd,
    /// Maximum mean discrepancy permutation p-value.
    EmpiricalMmd,
    /// Text: ROC AUC of a domain classifier, drift above an absolute threshold.
    AbsTextContentDrift,
    /// Text: ROC AUC of a domain classifier, drift above the bootstrapped percentile of random
    /// classifiers' AUCs (the threshold is the percentile's confidence, 0.95).
    PercTextContentDrift,
}

/// Seed of the permutation tests (`TVD`, `empirical_mmd`): numpy's legacy `RandomState(0)`,
/// the seed Evidently sets for `TVD`.
pub const PERMUTATION_SEED: u32 = 0;

impl StatTest {
    /// Every test, in Evidently's registry order.
    pub const ALL: [StatTest; 19] = [
        StatTest::Ks,
        StatTest::ChiSquare,
        StatTest::Z,
        StatTest::Psi,
        StatTest::JensenShannon,
        StatTest::Wasserstein,
        StatTest::KlDiv,
        StatTest::Hellinger,
        StatTest::TTest,
        StatTest::MannW,
        StatTest::Anderson,
        StatTest::CramerVonMises,
        StatTest::Ed,
        StatTest::GTest,
        StatTest::FisherExact,
        StatTest::Tvd,
        StatTest::EmpiricalMmd,
        StatTest::AbsTextContentDrift,
        StatTest::PercTextContentDrift,
    ];

    /// Evidently's name for the test.
    pub fn name(self) -> &'static str {
        match self {
            StatTest::Ks => "ks",
            StatTest::ChiSquare => "chisquare",
            StatTest::Z => "z",
            StatTest::Psi => "psi",
            StatTest::JensenShannon => "jensenshannon",
            StatTest::Wasserstein => "wasserstein",
            StatTest::KlDiv => "kl_div",
            StatTest::Hellinger => "hellinger",
            StatTest::TTest => "t_test",
            StatTest::MannW => "mannw",
            StatTest::Anderson => "anderson",
            StatTest::CramerVonMises => "cramer_von_mises",
            StatTest::Ed => "ed",
            StatTest::GTest => "g_test",
            StatTest::FisherExact => "fisher_exact",
            StatTest::Tvd => "TVD",
            StatTest::EmpiricalMmd => "empirical_mmd",
            StatTest::AbsTextContentDrift => "abs_text_content_drift",
            StatTest::PercTextContentDrift => "perc_text_content_drift",
        }
    }

    /// The test with Evidently's name `name`.
    pub fn from_name(name: &str) -> Option<StatTest> {
        StatTest::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Evidently's default threshold.
    pub fn default_threshold(self) -> f64 {
        match self {
            StatTest::Ks | StatTest::ChiSquare | StatTest::Z | StatTest::TTest => 0.05,
            StatTest::MannW => 0.05,
            StatTest::AbsTextContentDrift => 0.55,
            StatTest::PercTextContentDrift => 0.95,
            _ => 0.1,
        }
    }

    /// Whether the score is a p-value (small means drift) rather than a distance.
    pub fn is_pvalue(self) -> bool {
        !matches!(
            self,
            StatTest::Psi
                | StatTest::JensenShannon
                | StatTest::Wasserstein
                | StatTest::KlDiv
                | StatTest::Hellinger
                | StatTest::Ed
                | StatTest::AbsTextContentDrift
                | StatTest::PercTextContentDrift
        )
    }

    /// Evidently's verdict for `score` against `threshold`. Each test keeps its own comparison:
    /// `ks` and `cramer_von_mises` drift at p ≤ t, other p-value tests at p < t, `ed` at d > t,
    /// other distances at d ≥ t, `abs_text_content_drift` at AUC > t. A NaN score never drifts.
    ///
    /// `perc_text_content_drift` compares the AUC with a bootstrapped percentile, not with its
    /// threshold: its verdict comes from [`super::text::text_drift`], and this returns false.
    pub fn is_drift(self, score: f64, threshold: f64) -> bool {
        match self {
            StatTest::Ks | StatTest::CramerVonMises => score <= threshold,
            StatTest::Ed | StatTest::AbsTextContentDrift => score > threshold,
            StatTest::PercTextContentDrift => false,
            t if t.is_pvalue() => score < threshold,
            _ => score >= threshold,
        }
    }

    /// Whether Evidently allows the test on a column of this kind.
    pub fn applies_to(self, kind: ColumnKind) -> bool {
        match self {
            StatTest::AbsTextContentDrift | StatTest::PercTextContentDrift => kind == ColumnKind::Text,
            StatTest::Psi | StatTest::JensenShannon | StatTest::KlDiv | StatTest::Hellinger => {
                matches!(kind, ColumnKind::Numerical | ColumnKind::Categorical)
            }
            StatTest::ChiSquare | StatTest::Z | StatTest::GTest | StatTest::FisherExact | StatTest::Tvd => {
                kind == ColumnKind::Categorical
            }
            _ => kind == ColumnKind::Numerical,
        }
    }

    /// The test's score on a prepared column of the given kind.
    pub fn score(self, data: &Prepared<'_>, kind: ColumnKind) -> Result<f64> {
        let categorical = kind == ColumnKind::Categorical;
        let numbers = || match data {
            Prepared::Numerical { reference, current, integer } => Ok((&reference[..], &current[..], *integer)),
            Prepared::Categorical { .. } => Err(Error::NotApplicable { test: self.name(), kind: "cat" }),
        };
        let shares = |fill: bool| -> Result<(Vec<f64>, Vec<f64>)> {
            match data {
                Prepared::Numerical { reference, current, integer } if !categorical => {
                    Ok(binning::numerical_shares(reference, current, *integer, fill)?)
                }
                _ => {
                    let (r, c) = data.counts();
                    let (nr, nc) = (r.iter().sum::<u64>(), c.iter().sum::<u64>());
                    Ok(binning::count_shares(&r, &c, nr as usize, nc as usize, fill))
                }
            }
        };
        let score = match self {
            StatTest::Ks => {
                let (r, c, _) = numbers()?;
                stats::ks::ks_2samp(r, c)?.pvalue
            }
            StatTest::ChiSquare => {
                let (r, c) = data.counts();
                stats::chisquare::chisquare(&r, &c)?
            }
            StatTest::Z => {
                let (r, c) = data.counts();
                stats::z::z_test(&r, &c)?
            }
            StatTest::GTest => {
                let (r, c) = data.counts();
                stats::g_test::g_test(&r, &c)?
            }
            StatTest::FisherExact => {
                let (r, c) = data.counts();
                stats::fisher_exact::fisher_exact_counts(&r, &c)?
            }
            StatTest::Tvd => {
                let (r, c) = data.codes();
                stats::tvd::tvd_pvalue(&r, &c, PERMUTATION_SEED)?
            }
            StatTest::Psi => {
                let (r, c) = shares(true)?;
                stats::psi::psi(&r, &c)?
            }
            StatTest::KlDiv => {
                let (r, c) = shares(true)?;
                stats::kl_div::kl_div(&r, &c)?
            }
            StatTest::JensenShannon => {
                let (r, c) = shares(false)?;
                stats::jensenshannon::jensenshannon(&r, &c)?
            }
            StatTest::Hellinger => match data {
                Prepared::Numerical { reference, current, integer } if !categorical => {
                    stats::hellinger::hellinger_numerical(reference, current, *integer)?
                }
                _ => {
                    let (r, c) = data.counts();
                    stats::hellinger::hellinger_categorical(&r, &c)?
                }
            },
            StatTest::Wasserstein => {
                let (r, c, _) = numbers()?;
                stats::wasserstein::wasserstein(r, c)?
            }
            StatTest::Ed => {
                let (r, c, _) = numbers()?;
                stats::energy_distance::energy_distance(r, c)?
            }
            StatTest::TTest => {
                let (r, c, _) = numbers()?;
                stats::t_test::t_test(r, c)?
            }
            StatTest::MannW => {
                let (r, c, _) = numbers()?;
                stats::mannw::mannwhitneyu_less(r, c)?
            }
            StatTest::Anderson => {
                let (r, c, _) = numbers()?;
                stats::anderson::anderson_ksamp(r, c)?.significance_level
            }
            StatTest::CramerVonMises => {
                let (r, c, _) = numbers()?;
                stats::cramer_von_mises::cramervonmises_2samp(r, c)?.pvalue
            }
            StatTest::EmpiricalMmd => {
                let (r, c, _) = numbers()?;
                stats::mmd::mmd_pvalue(r, c, PERMUTATION_SEED)?
            }
            StatTest::AbsTextContentDrift | StatTest::PercTextContentDrift => {
                return Err(Error::NotApplicable { test: self.name(), kind: kind.name() });
            }
        };
        Ok(score)
    }
}

impl std::fmt::Display for StatTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in StatTest::ALL {
            assert_eq!(StatTest::from_name(t.name()), Some(t));
        }
        assert_eq!(StatTest::from_name("nope"), None);
    }

    #[test]
    fn directions() {
        assert!(StatTest::Ks.is_drift(0.05, 0.05));
        assert!(!StatTest::ChiSquare.is_drift(0.05, 0.05));
        assert!(StatTest::Psi.is_drift(0.1, 0.1));
        assert!(!StatTest::Ed.is_drift(0.1, 0.1));
        assert!(!StatTest::Ks.is_drift(f64::NAN, 0.05));
    }
}
