//! `apitune status` and `apitune check`: is everything cached, up to date and within tolerance.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args;
use serde_json::json;

use crate::pipeline::plan::Decision;

use super::plan::{invalid_plans, plans_for, print_plans};
use super::{Failure, Format, Loaded, ManifestArgs};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit 1 when anything is stale
    #[arg(long)]
    pub exit_code: bool,
}

pub(super) fn status_command(cache_dir: &Path, args: &StatusArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let plans = plans_for(cache_dir, &loaded, &BTreeSet::new())?;
    print_plans(&plans, args.format);
    invalid_plans(&plans, &loaded)?;
    let stale = plans.iter().filter(|p| !p.is_hit()).count();
    if args.exit_code && stale > 0 {
        return Err(Failure::Stale(format!(
            "{stale} of {} arms are not up to date",
            plans.len()
        )));
    }
    Ok(())
}

pub(super) fn check_command(cache_dir: &Path, args: &StatusArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    if !loaded.targets.is_empty() {
        return Err(Failure::Usage(
            "check takes the whole manifest; it accepts no targets".into(),
        ));
    }
    let cache = super::remote::open_cache(cache_dir, &loaded, false)?;
    let keyer = loaded.keyer(&cache)?;
    let report = crate::pipeline::check::check(&keyer)?;
    invalid_plans(&report.stale, &loaded)?;
    if args.format == Format::Json {
        let out = json!({ "passed": report.passed(), "stale": report.stale, "expectations": report.expectations });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plain JSON")
        );
    } else {
        for p in &report.stale {
            let why = match &p.decision {
                Decision::Miss { reason, .. } => reason.clone(),
                Decision::Pending { after } => format!("runs after {}", after.join(", ")),
                _ => String::new(),
            };
            println!("stale   {}  {why}", p.arm);
        }
        for e in &report.expectations {
            let value = e.value.map_or("-".to_string(), |v| format!("{v}"));
            let verdict = if e.ok { "ok" } else { "FAIL" };
            let problem = e
                .problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default();
            println!(
                "{verdict:<6}  {}  = {value}  expected {}{problem}",
                e.target, e.bound
            );
        }
        println!(
            "{}: {} arms stale, {} of {} expectations hold",
            if report.passed() {
                "check passed"
            } else {
                "check FAILED"
            },
            report.stale.len(),
            report.expectations.iter().filter(|e| e.ok).count(),
            report.expectations.len()
        );
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Stale(String::new()))
    }
}
