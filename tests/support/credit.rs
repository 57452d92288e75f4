//! The credit applicants the end-to-end tests send to the model `credit` (features `age`,
//! `region`, `income`, `vip`; a `good`/`bad` prediction with calibrated scores), in two worlds
//! that differ in how the traffic changes.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// How the applicants change.
#[derive(Debug, Clone, Copy)]
pub enum World {
    /// Before: regions weighted 4:3:2:1. After: ages crowd around 40, where the model is least
    /// sure, regions reverse their mix, income and vip keep their distribution, and the true
    /// outcome flips (young applicants become the good risks), so the model becomes wrong. An
    /// estimate from scores alone sees only the first effect (less confident predictions); the
    /// labels show the second.
    Uncertain,
    /// Before: regions uniform. After: ages, regions and incomes all move, vip does not; the
    /// model stays as right as before.
    Moved,
}

impl World {
    /// One applicant, before or after the change: its record (features, prediction, scores) and
    /// its true label.
    pub fn applicant(self, rng: &mut StdRng, changed: bool) -> (Value, &'static str) {
        let regions = ["north", "south", "east", "west"];
        let (age, region, income) = match (self, changed) {
            (World::Uncertain, _) => {
                let age = if changed { rng.random_range(32.0..48.0_f64) } else { rng.random_range(20.0..60.0_f64) };
                let weights = if changed { [0.1, 0.2, 0.3, 0.4] } else { [0.4, 0.3, 0.2, 0.1] };
                let u: f64 = rng.random();
                let mut cumulative = 0.0;
                let region = weights
                    .iter()
                    .position(|w| {
                        cumulative += w;
                        u < cumulative
                    })
                    .unwrap_or(3);
                (age, regions[region], rng.random_range(0.0..1.0_f64) * 50_000.0 + 20_000.0)
            }
            (World::Moved, _) => {
                let age = if changed { rng.random_range(50.0..70.0_f64) } else { rng.random_range(20.0..60.0_f64) };
                let u: f64 = rng.random();
                let region = if changed { (u * 10.0) as usize % 2 + 2 } else { (u * 4.0) as usize % 4 };
                let base = if changed { 60_000.0 } else { 20_000.0 };
                (age, regions[region], rng.random_range(0.0..1.0_f64) * 50_000.0 + base)
            }
        };
        let (age, income) = (age.round(), income.round());
        let vip = rng.random_bool(0.2);
        let p_bad = 1.0 / (1.0 + ((age - 40.0) / 4.0).exp());
        let prediction = if p_bad >= 0.5 { "bad" } else { "good" };
        let flipped = matches!(self, World::Uncertain) && changed;
        let bad = if flipped { rng.random_bool(1.0 - p_bad) } else { rng.random_bool(p_bad) };
        let record = json!({"features": {"age": age, "region": region, "income": income, "vip": vip},
                            "prediction": prediction, "scores": {"good": 1.0 - p_bad, "bad": p_bad}});
        (record, if bad { "bad" } else { "good" })
    }

    /// Writes `dir/reference.csv`: `rows` applicants from before the change (seed 1), with their
    /// predictions, labels (`target`) and scores.
    pub fn write_reference(self, dir: &Path, rows: usize) {
        let mut rng = StdRng::seed_from_u64(1);
        let mut csv = String::from("age,region,income,vip,prediction,target,score_good,score_bad\n");
        for _ in 0..rows {
            let (r, label) = self.applicant(&mut rng, false);
            let f = &r["features"];
            csv += &format!(
                "{},{},{},{},{},{label},{},{}\n",
                f["age"],
                f["region"].as_str().unwrap(),
                f["income"],
                f["vip"],
                r["prediction"].as_str().unwrap(),
                r["scores"]["good"],
                r["scores"]["bad"]
            );
        }
        std::fs::write(dir.join("reference.csv"), csv).unwrap();
    }
}
