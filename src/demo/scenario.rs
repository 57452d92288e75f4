//! The demo's world: loan applications to a bank, and whether each loan went bad.
//!
//! Every applicant has an age, an income, a loan amount (a share of the income), a term, an
//! employment status, a region and whether they defaulted before. Whether the loan goes `bad` is
//! a coin with probability `sigmoid(3·z)`, where `z` is a risk score of the world in force, so
//! the best possible model is right about 90% of the time.
//!
//! - **Before the shift** (a steady economy): ages 21–70, incomes e^9.8–e^11.8 (about 18k–130k),
//!   loans 5–120% of income, mostly short terms and salaried applicants;
//!   `z = 5·(loan/income − 0.75) + 2·past_default + (term − 36)/24`.
//! - **After the shift** (a recession, and a new online channel): younger applicants (19–45),
//!   lower incomes (e^9.4–e^11.2), longer terms, many more self-employed; and the risk itself
//!   changes: self-employed applicants are much riskier, salaried ones a little safer, and the
//!   debt-to-income level that is still safe falls:
//!   `z = 5·(loan/income − 0.7) + 3·self_employed − salaried + 2·past_default + (term − 36)/24`.
//!
//! A model trained before the shift is right about 67% of the time after it; one trained on a
//! few hundred labeled applications from after the shift, about 90%. Drift shows in age,
//! income, loan amount, term and employment; region does not change.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// Which world the applicants come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Before the shift.
    Steady,
    /// After the shift.
    Recession,
}

/// One applicant: the features (the ingest format's `features` object) and the true outcome.
pub struct Applicant {
    /// `age`, `income`, `loan_amount`, `term_months`, `employment`, `region`, `has_default`.
    pub features: Value,
    /// `"bad"` or `"good"`: what happened to the loan, known weeks later.
    pub outcome: &'static str,
    /// The probability of `bad` in the applicant's world (what an ideal scorecard says).
    pub p_bad: f64,
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[(T, f64)]) -> T {
    let mut u = rng.random_range(0.0..1.0);
    for (item, weight) in items {
        if u < *weight {
            return *item;
        }
        u -= weight;
    }
    items[items.len() - 1].0
}

/// Draws one applicant from `world`.
pub fn applicant(rng: &mut StdRng, world: World) -> Applicant {
    let steady = world == World::Steady;
    let age = if steady { rng.random_range(21.0..70.0_f64) } else { rng.random_range(19.0..45.0_f64) }.round();
    let income = if steady { rng.random_range(9.8..11.8_f64) } else { rng.random_range(9.4..11.2_f64) }.exp().round();
    let ratio = if steady { rng.random_range(0.05..1.2) } else { rng.random_range(0.05..1.1) };
    let loan = (income * ratio).round().max(1.0);
    let terms = if steady { [0.3, 0.3, 0.25, 0.15] } else { [0.1, 0.2, 0.3, 0.4] };
    let term = pick(rng, &[(12.0, terms[0]), (24.0, terms[1]), (36.0, terms[2]), (60.0, terms[3])]);
    let jobs = if steady { [0.6, 0.2, 0.08, 0.12] } else { [0.4, 0.45, 0.1, 0.05] };
    let employment =
        pick(rng, &[("salaried", jobs[0]), ("self-employed", jobs[1]), ("unemployed", jobs[2]), ("retired", jobs[3])]);
    let region = ["north", "south", "east", "west"][rng.random_range(0..4)];
    let has_default = rng.random_bool(if steady { 0.08 } else { 0.12 });
    let features = json!({
        "age": age, "income": income, "loan_amount": loan, "term_months": term,
        "employment": employment, "region": region, "has_default": has_default,
    });
    let p_bad = 1.0 / (1.0 + (-3.0 * risk(world, &features)).exp());
    let outcome = if rng.random_bool(p_bad) { "bad" } else { "good" };
    Applicant { features, outcome, p_bad }
}

/// The risk score `z` of `features` (an applicant's) in `world`; see the module docs.
pub fn risk(world: World, features: &Value) -> f64 {
    let number = |name: &str| features[name].as_f64().unwrap_or(0.0);
    let ratio = number("loan_amount") / number("income").max(1.0);
    let history = if features["has_default"] == true { 2.0 } else { 0.0 } + (number("term_months") - 36.0) / 24.0;
    match world {
        World::Steady => 5.0 * (ratio - 0.75) + history,
        World::Recession => {
            let job = match features["employment"].as_str() {
                Some("self-employed") => 3.0,
                Some("salaried") => -1.0,
                _ => 0.0,
            };
            5.0 * (ratio - 0.7) + job + history
        }
    }
}
#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// The figures the module docs promise: the ideal model of each world, on each world.
    #[test]
    fn the_shift_costs_the_old_model_and_a_new_one_can_recover() {
        let mut rng = StdRng::seed_from_u64(1);
        // The ideal model of `judge` (the sign of its risk score) on applicants of `world`.
        let accuracy = |rng: &mut StdRng, world: World, judge: World| {
            let n = 20_000;
            let right = (0..n)
                .filter(|_| {
                    let a = applicant(rng, world);
                    (risk(judge, &a.features) >= 0.0) == (a.outcome == "bad")
                })
                .count();
            right as f64 / n as f64
        };
        let before = accuracy(&mut rng, World::Steady, World::Steady);
        let stale = accuracy(&mut rng, World::Recession, World::Steady);
        let fresh = accuracy(&mut rng, World::Recession, World::Recession);
        assert!(before > 0.88, "{before}");
        assert!(stale < 0.75, "{stale}");
        assert!(fresh > 0.88, "{fresh}");
    }
}
