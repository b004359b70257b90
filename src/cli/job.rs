//! `apitune job` (hidden): what one batch job runs on a compute node. It computes one arm whose
//! inputs are already published, into the shared cache, and leaves its exit status in
//! `jobs/<key>/exit-<job id>.json`, which is what the submitting `apitune run` believes.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args;

use crate::cache::{Cache, Key};
use crate::pipeline::plan::{self, Decision};
use crate::pipeline::scheduler::{self, Local, Outcome, RunOptions};
use crate::pipeline::slurm::ExitStatus;

use super::{Failure, Loaded, ManifestArgs};

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// The arm to compute
    #[arg(long)]
    pub arm: String,
    /// Its key as the submitting run computed it: a different key here means the manifest or
    /// its inputs changed since, and the job refuses to publish something else
    #[arg(long)]
    pub key: String,
    /// Compute it even if cached
    #[arg(long)]
    pub force: bool,
}

pub(super) fn job_command(cache_dir: &Path, args: &JobArgs) -> Result<(), Failure> {
    let key: Key = args
        .key
        .parse()
        .map_err(|e| Failure::Usage(format!("--key {}: {e}", args.key)))?;
    let job_id =
        std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| format!("local-{}", std::process::id()));
    let outcome = compute(cache_dir, args, &key);
    let status = ExitStatus {
        ok: outcome.is_ok(),
        outcome: match &outcome {
            Ok(true) => "ran",
            Ok(false) => "hit",
            Err(_) => "failed",
        }
        .into(),
        error: outcome.as_ref().err().map(|e| e.to_string()),
        host: crate::cache::holder_description(),
    };
    let dir = Cache::open_read_only(cache_dir)?.jobs_dir(&key)?;
    let path = dir.join(ExitStatus::file_name(&job_id));
    let tmp = dir.join(format!(".{}.tmp", ExitStatus::file_name(&job_id)));
    let json = serde_json::to_vec_pretty(&status).expect("plain JSON");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Failure::Other(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    match outcome {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::Stage(e.to_string())),
    }
}

/// Computes the arm; `Ok(false)` when it was cached already.
fn compute(cache_dir: &Path, args: &JobArgs, key: &Key) -> Result<bool, String> {
    let describe = |f: Failure| match f {
        Failure::Manifest(errors) => errors.to_string(),
        Failure::Stale(m) | Failure::Usage(m) | Failure::Stage(m) | Failure::Unavailable(m) => m,
        Failure::Other(e) => format!("{e:#}"),
    };
    let loaded = Loaded::new(&args.manifest).map_err(describe)?;
    let cache = super::remote::open_cache(cache_dir, &loaded, true).map_err(describe)?;
    let keyer = loaded.keyer(&cache).map_err(describe)?;
    let id = loaded
        .dag
        .arms
        .iter()
        .position(|a| a.name == args.arm)
        .ok_or_else(|| {
            format!(
                "the manifest has no arm `{}` (was it edited since the job was submitted?)",
                args.arm
            )
        })?;
    let selected = loaded
        .dag
        .select(std::slice::from_ref(&args.arm))
        .map_err(|e| e.to_string())?;
    let forced: BTreeSet<usize> = args.force.then_some(id).into_iter().collect();
    let plans = plan::plan(&keyer, &selected, &forced).map_err(|e| format!("{e:#}"))?;
    for p in &plans {
        let planned = match &p.decision {
            Decision::Hit { key, .. } | Decision::Miss { key, .. } => Some(*key),
            Decision::Pending { .. } | Decision::Invalid { .. } => None,
        };
        if p.id == id {
            if planned != Some(*key) {
                return Err(format!(
                    "`{}` has key {} here, not {key}: the manifest or its inputs changed since \
                     the job was submitted; run again to submit the new key",
                    p.arm,
                    planned.map_or("(none: its inputs are missing)".into(), |k| k.to_string())
                ));
            }
        } else if !p.is_hit() {
            return Err(format!(
                "input `{}` is not in the cache; jobs run after their inputs are published (was \
                 it removed meanwhile?)",
                p.arm
            ));
        }
    }
    let opts = RunOptions {
        jobs: 1,
        keep_going: false,
        forced,
    };
    let results = scheduler::run(
        &keyer,
        &selected,
        &opts,
        &Local::default(),
        &scheduler::Quiet,
    );
    super::run::print_results(&results);
    let result = results
        .iter()
        .find(|r| r.arm == args.arm)
        .ok_or("the arm did not run")?;
    match &result.outcome {
        Outcome::Ran => Ok(true),
        Outcome::Hit => Ok(false),
        Outcome::Failed(msg) | Outcome::Skipped(msg) => Err(msg.clone()),
    }
}
