//! `apitune explain`: why an arm misses the cache, field by field.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use clap::Args;
use serde_json::json;

use crate::cache::{Cache, FieldDiff};
use crate::pipeline::plan::{self, ArmPlan, Decision, History, Keyer};

use super::{Failure, Format, Loaded, ManifestArgs, short};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// [MANIFEST] then the stage or arm to explain
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub(super) fn explain_command(cache_dir: &Path, args: &ExplainArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    if loaded.targets.is_empty() {
        return Err(Failure::Usage(
            "name the stage or arm to explain: apitune explain [MANIFEST] STAGE".into(),
        ));
    }
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let history = History::load(&cache)?;
    let wanted = wanted_arms(&loaded);
    let mut out = Vec::new();
    for p in plans.iter().filter(|p| wanted.contains(&p.id)) {
        let nearest = match &p.decision {
            Decision::Miss { .. } => nearest_entry(&keyer, &plans, &history, p)?,
            _ => None,
        };
        out.push((p, nearest));
    }
    if args.format == Format::Json {
        print_json(&out);
    } else {
        out.into_iter()
            .for_each(|(p, nearest)| print_text(p, nearest));
    }
    Ok(())
}

/// An arm's plan with the nearest cached key and the fields that differ from it.
type Explained<'p> = (&'p ArmPlan, Option<(String, Vec<FieldDiff>)>);

/// The arms the targets name (a stage name stands for all its arms).
fn wanted_arms(loaded: &Loaded) -> BTreeSet<usize> {
    loaded
        .targets
        .iter()
        .flat_map(|t| {
            loaded
                .dag
                .stage_arms
                .get(t)
                .cloned()
                .or_else(|| loaded.dag.arm_by_name(t).map(|i| vec![i]))
                .unwrap_or_default()
        })
        .collect()
}

/// The cached entry of the missed arm `p` whose key manifest is nearest to its new one.
fn nearest_entry(
    keyer: &Keyer,
    plans: &[ArmPlan],
    history: &History,
    p: &ArmPlan,
) -> Result<Option<(String, Vec<FieldDiff>)>, Failure> {
    // Recompute the key manifest to show every differing field against the nearest entry.
    let digests: HashMap<_, _> = plans
        .iter()
        .filter_map(|q| match &q.decision {
            Decision::Hit { digest, .. } => Some((q.id, *digest)),
            _ => None,
        })
        .collect();
    let km = keyer.key_manifest(p.id, &digests)?;
    Ok(history
        .nearest(&p.arm, &km)
        .map(|(e, diffs)| (e.key.to_string(), diffs)))
}

fn print_json(out: &[Explained]) {
    let arms: Vec<_> = out
        .iter()
        .map(|(p, nearest)| {
            json!({ "arm": p.arm, "decision": p.decision, "nearest": nearest.as_ref().map(|(k, d)| json!({
                "key": k,
                "differences": d.iter().map(|d| json!({"field": d.path, "old": d.old, "new": d.new})).collect::<Vec<_>>(),
            })) })
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "arms": arms })).expect("plain JSON")
    );
}

fn print_text(p: &ArmPlan, nearest: Option<(String, Vec<FieldDiff>)>) {
    match &p.decision {
        Decision::Hit { key, .. } => {
            println!("{}: up to date (key {})", p.arm, short(&key.to_string()))
        }
        Decision::Pending { after } => println!(
            "{}: runs after {} (its key depends on their output)",
            p.arm,
            after.join(", ")
        ),
        Decision::Invalid { error } => println!("{}: cannot be keyed: {error}", p.arm),
        Decision::Miss { key, reason, .. } => {
            println!(
                "{}: miss (new key {}): {reason}",
                p.arm,
                short(&key.to_string())
            );
            if let Some((old_key, diffs)) = nearest {
                println!(
                    "  nearest cached key {}; differing fields:",
                    short(&old_key)
                );
                for d in diffs {
                    let show = |v: &Option<serde_json::Value>| {
                        v.as_ref().map_or("(unset)".into(), |v| v.to_string())
                    };
                    println!("    {}: {} → {}", d.path, show(&d.old), show(&d.new));
                }
            }
        }
    }
}
