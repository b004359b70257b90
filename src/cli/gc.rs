//! `apitune gc`: remove entries no given manifest reaches.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::cache::Cache;
use crate::pipeline::plan::{self, Decision};

use super::{DEFAULT_MANIFEST, Failure, Loaded};

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Manifests whose arms to keep [default: experiments/quickstart.toml]
    pub manifests: Vec<PathBuf>,
    /// List what would be removed, with sizes, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short = 'S', long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

pub(super) fn gc_command(cache_dir: &Path, args: &GcArgs) -> Result<(), Failure> {
    let manifests = if args.manifests.is_empty() {
        vec![PathBuf::from(DEFAULT_MANIFEST)]
    } else {
        args.manifests.clone()
    };
    let cache = if args.dry_run {
        Cache::open_read_only(cache_dir)?
    } else {
        Cache::open_exclusive(cache_dir)?
    };
    let mut keep = std::collections::HashSet::new();
    for path in &manifests {
        let loaded = Loaded::from_path(path, &args.set, Vec::new())?;
        let keyer = loaded.keyer(&cache)?;
        for p in plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())? {
            if let Decision::Hit { key, .. } = p.decision {
                keep.insert(key);
            }
        }
    }
    // Memo directories (eval generations) live as long as an entry that was made from them.
    let live_memos: std::collections::HashSet<String> = cache
        .entries()?
        .iter()
        .filter(|e| keep.contains(&e.key))
        .flat_map(|e| {
            e.meta.summary["memo"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let report = cache.gc(&keep, &live_memos, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (what, bytes) in &report.removed {
        println!("{verb} {what} ({})", human_bytes(*bytes));
    }
    println!(
        "{verb} {} items, {}; kept {} entries",
        report.removed.len(),
        human_bytes(report.bytes),
        report.kept
    );
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
