//! `apitune plan` (and `run --dry-run`): per arm, hit or miss and why.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args;
use serde_json::json;

use crate::manifest::ManifestErrors;
use crate::pipeline::plan::{self, ArmPlan, Decision};

use super::{Failure, Format, Loaded, ManifestArgs, NAME_COLUMN, short};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub(super) fn plans_for(
    cache_dir: &Path,
    loaded: &Loaded,
    forced: &BTreeSet<usize>,
) -> Result<Vec<ArmPlan>, Failure> {
    let cache = super::remote::open_cache(cache_dir, loaded, false)?;
    let keyer = loaded.keyer(&cache)?;
    Ok(plan::plan(&keyer, &loaded.selected()?, forced)?)
}

pub(super) fn plan_command(
    cache_dir: &Path,
    args: &ManifestArgs,
    format: Format,
) -> Result<(), Failure> {
    let loaded = Loaded::new(args)?;
    let plans = plans_for(cache_dir, &loaded, &BTreeSet::new())?;
    print_plans(&plans, format);
    invalid_plans(&plans, &loaded)
}

/// Arms that cannot even be keyed (a missing input file, an input outside the project) are the
/// user's to fix: each is reported at its stage's place in the manifest.
pub(super) fn invalid_plans(plans: &[ArmPlan], loaded: &Loaded) -> Result<(), Failure> {
    let invalid: Vec<crate::manifest::Diagnostic> = plans
        .iter()
        .filter_map(|p| match &p.decision {
            Decision::Invalid { error } => Some(loaded.arm_error(p.id, error)),
            _ => None,
        })
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(Failure::Manifest(ManifestErrors(invalid)))
    }
}

pub(super) fn print_plans(plans: &[ArmPlan], format: Format) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "arms": plans })).expect("plain JSON")
        );
        return;
    }
    let width = plans
        .iter()
        .map(|p| p.arm.chars().count())
        .max()
        .unwrap_or(0);
    for p in plans {
        let (status, detail) = match &p.decision {
            Decision::Hit { key, .. } => ("hit", format!("key {}", short(&key.to_string()))),
            Decision::Miss { reason, .. } => ("miss", reason.clone()),
            Decision::Pending { after } => ("pending", format!("runs after {}", after.join(", "))),
            Decision::Invalid { error } => ("invalid", error.clone()),
        };
        println!(
            "{:<width$}  {:<10}  {:<7}  {detail}",
            p.arm,
            p.kind,
            status,
            width = width.min(NAME_COLUMN)
        );
    }
    let misses = plans.iter().filter(|p| !p.is_hit()).count();
    println!(
        "{} arms: {} cached, {} to run",
        plans.len(),
        plans.len() - misses,
        misses
    );
}
