//! `apitune push` and `apitune pull`, and the remote cache that `run`, `plan`, `status` and
//! `check` read through (`--remote`, `APITUNE_REMOTE`, or the manifest's `[cache] remote`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::cache::{Cache, CacheError, Pushed, Remote};
use crate::pipeline::plan::{self, Decision};

use super::{Failure, Format, Loaded, ManifestArgs};

/// `--remote` as given on the command line (set once, before any command runs).
pub(super) static REMOTE_FLAG: OnceLock<Option<String>> = OnceLock::new();

#[derive(Args, Debug)]
pub struct RemoteArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The remote for this command: `--remote`, else `APITUNE_REMOTE`, else the manifest's
/// `[cache] remote` (a plain path there is relative to the manifest).
fn remote_url(loaded: &Loaded) -> Option<String> {
    let given = REMOTE_FLAG
        .get()
        .cloned()
        .flatten()
        .or_else(|| std::env::var("APITUNE_REMOTE").ok())
        .filter(|url| !url.trim().is_empty());
    if given.is_some() {
        return given;
    }
    let url = loaded.manifest.cache.remote.clone()?;
    if url.contains("://") || Path::new(&url).is_absolute() {
        return Some(url);
    }
    Some(
        loaded
            .manifest
            .base_dir
            .join(url)
            .to_string_lossy()
            .into_owned(),
    )
}

/// The local cache, reading through to the remote when one is configured. `writer` asks for a
/// writer; otherwise a remote still needs one (to store what it downloads), and where
/// maintenance (`verify`, `gc`) holds the cache the remote is only not consulted.
pub(super) fn open_cache(
    cache_dir: &Path,
    loaded: &Loaded,
    writer: bool,
) -> Result<Cache, Failure> {
    let Some(url) = remote_url(loaded) else {
        return Ok(if writer {
            Cache::open(cache_dir)?
        } else {
            Cache::open_read_only(cache_dir)?
        });
    };
    let mut cache = match Cache::open(cache_dir) {
        Ok(cache) => cache,
        Err(e @ CacheError::Locked { .. }) if !writer => {
            eprintln!("note: {e}; the remote {url} is not consulted meanwhile");
            return Ok(Cache::open_read_only(cache_dir)?);
        }
        Err(e) => return Err(e.into()),
    };
    cache.set_remote(Remote::open(&url)?);
    Ok(cache)
}

fn required_remote(loaded: &Loaded, command: &str) -> Result<String, Failure> {
    remote_url(loaded).ok_or_else(|| {
        Failure::Usage(format!(
            "{command} needs a remote cache: pass --remote URL (s3://bucket/prefix, gs://…, az://…, file:///path or a path), set APITUNE_REMOTE, or add `[cache] remote = \"…\"` to the manifest"
        ))
    })
}

/// Uploads every arm of the manifest that the local cache holds and the remote lacks.
pub(super) fn push_command(cache_dir: &Path, args: &RemoteArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let url = required_remote(&loaded, "push")?;
    let cache = Cache::open_read_only(cache_dir)?;
    let remote = Remote::open(&url)?;
    let keyer = loaded.keyer(&cache)?;
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let started = Instant::now();
    let (mut uploaded, mut present, mut bytes, mut missing) = (Vec::new(), 0, 0u64, Vec::new());
    for p in &plans {
        let Decision::Hit { key, .. } = &p.decision else {
            missing.push(p.arm.clone());
            continue;
        };
        let Some(entry) = cache.lookup(key)? else {
            missing.push(p.arm.clone());
            continue;
        };
        if let Err(reason) = cache.verify_for_use(&entry)? {
            return Err(Failure::Stage(format!(
                "`{}` is damaged locally ({reason}); not pushed",
                p.arm
            )));
        }
        match remote.push(&entry)? {
            Pushed::Uploaded { bytes: b, .. } => {
                bytes += b;
                uploaded.push(p.arm.clone());
            }
            Pushed::Present => present += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    report(
        args.format,
        json!({
            "remote": url, "pushed": uploaded, "already_there": present,
            "bytes": bytes, "seconds": seconds, "not_cached_locally": missing,
        }),
        || {
            for arm in &uploaded {
                println!("pushed   {arm}");
            }
            for arm in &missing {
                println!("missing  {arm}  (not in the local cache: run it first)");
            }
            println!(
                "{} arms pushed to {url} ({}), {present} already there, {} not cached locally",
                uploaded.len(),
                throughput(bytes, seconds),
                missing.len()
            );
        },
    );
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Stale(String::new()))
    }
}

/// Downloads every arm of the manifest that the remote has and the local cache lacks.
pub(super) fn pull_command(cache_dir: &Path, args: &RemoteArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let url = required_remote(&loaded, "pull")?;
    let mut cache = Cache::open(cache_dir)?;
    cache.set_remote(Remote::open(&url)?);
    let keyer = loaded.keyer(&cache)?;
    let started = Instant::now();
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let seconds = started.elapsed().as_secs_f64();
    let remote = cache.remote().expect("set above");
    let pulled = remote.fetched();
    let bytes: u64 = pulled.iter().map(|(_, b)| b).sum();
    let refused = remote.refusals();
    let pulled_keys: BTreeSet<_> = pulled.iter().map(|(k, _)| *k).collect();
    let (mut fetched, mut local, mut absent) = (Vec::new(), 0, Vec::new());
    for p in &plans {
        match &p.decision {
            Decision::Hit { key, .. } if pulled_keys.contains(key) => fetched.push(p.arm.clone()),
            Decision::Hit { .. } => local += 1,
            _ => absent.push(p.arm.clone()),
        }
    }
    report(
        args.format,
        json!({
            "remote": url, "pulled": fetched, "already_local": local, "bytes": bytes,
            "seconds": seconds, "not_on_remote": absent, "refused": refused,
        }),
        || {
            for arm in &fetched {
                println!("pulled   {arm}");
            }
            for arm in &absent {
                println!("missing  {arm}  (neither here nor on the remote)");
            }
            println!(
                "{} arms pulled from {url} ({}), {local} already local, {} on neither, {} refused",
                fetched.len(),
                throughput(bytes, seconds),
                absent.len(),
                refused.len()
            );
        },
    );
    if !refused.is_empty() {
        return Err(Failure::Stage(refused.join("\n")));
    }
    if absent.is_empty() {
        Ok(())
    } else {
        Err(Failure::Stale(String::new()))
    }
}

fn report(format: Format, json: serde_json::Value, table: impl FnOnce()) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("plain JSON")
        ),
        Format::Table => table(),
    }
}

fn throughput(bytes: u64, seconds: f64) -> String {
    let mb = bytes as f64 / 1e6;
    format!(
        "{mb:.1} MB in {seconds:.2} s, {:.1} MB/s",
        mb / seconds.max(1e-9)
    )
}
