//! `apitune show`: the results table of the cached report.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Args;

use crate::report::ShowFormat;

use crate::cache::Cache;
use crate::pipeline::plan::{self, ArmPlan, Decision};

use super::{Failure, Loaded, ManifestArgs};

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t = ShowFormatArg::Table)]
    pub format: ShowFormatArg,
}

pub(super) fn show_command(cache_dir: &Path, args: &ShowArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let reports: Vec<&ArmPlan> = plans.iter().filter(|p| p.kind == "report").collect();
    if reports.is_empty() {
        return Err(Failure::Usage(
            "the manifest has no stage of kind `report`".into(),
        ));
    }
    let mut shown = 0;
    for p in reports {
        match &p.decision {
            Decision::Hit { key, .. } => {
                let entry = cache
                    .lookup(key)?
                    .ok_or_else(|| anyhow::anyhow!("cache entry {key} vanished"))?;
                if shown > 0 {
                    println!();
                }
                print!("{}", crate::report::show(&entry.dir, args.format.into())?);
                shown += 1;
            }
            _ => eprintln!(
                "`{}` is not up to date: run `apitune run` first (`apitune status` says why)",
                p.arm
            ),
        }
    }
    if shown == 0 {
        Err(Failure::Stale(String::new()))
    } else {
        Ok(())
    }
}

/// The values of `show --format` (the library's [`ShowFormat`], as clap lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormatArg {
    /// Title, headline and the results table as padded Markdown.
    Table,
    /// `report.json`.
    Json,
    /// The results table as CSV.
    Csv,
}

impl From<ShowFormatArg> for ShowFormat {
    fn from(arg: ShowFormatArg) -> Self {
        match arg {
            ShowFormatArg::Table => Self::Table,
            ShowFormatArg::Json => Self::Json,
            ShowFormatArg::Csv => Self::Csv,
        }
    }
}
