//! `anchorwatch check-config`: parse and validate a config file, and print what it sets up.

use std::path::Path;

use crate::config;

/// Loads `file` (every field validated, schemas inferred) and prints a summary; the error names
/// the field.
pub fn run(file: &Path) -> anyhow::Result<()> {
    let loaded = config::load(file)?;
    let c = &loaded.config;
    println!("{}: valid", file.display());
    println!("  listen      {}", c.server.listen);
    println!("  store       {}", loaded.store_root());
    println!("  sync        {:?}, flush every {:?}", c.collector.sync, c.collector.flush_interval);
    println!(
        "  auth        {}",
        if c.auth.tokens.is_empty() {
            "open (no tokens configured)".to_string()
        } else {
            format!("{} token(s)", c.auth.tokens.len())
        }
    );
    for (name, schema) in &loaded.models {
        let features: Vec<String> =
            schema.features.iter().map(|f| format!("{}:{:?}", f.name, f.kind).to_lowercase()).collect();
        println!(
            "  model       {name}: prediction {:?}, label {:?}, {} feature(s): {}",
            schema.prediction,
            schema.label,
            features.len(),
            features.join(" ")
        );
    }
    Ok(())
}
