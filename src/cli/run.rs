//! `apitune run`: runs the stale arms in parallel, with progress bars on a terminal.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::manifest::ExecutorKind;
use crate::pipeline::plan::{self};
use crate::pipeline::scheduler::{self, ArmResult, Events, Executor, Local, Outcome, RunOptions};
use crate::pipeline::slurm::Slurm;

use super::plan::invalid_plans;
use super::{Failure, Format, Loaded, ManifestArgs, NAME_COLUMN};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Plan only: print hit/miss per arm and run nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Arms to run at once [default: number of CPUs; with Slurm, every ready arm]
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Where stale arms run: `local` (this process) or `slurm` (an sbatch job per arm, against
    /// this cache on a shared file system) [default: the manifest's `[executor] kind`]
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
    /// GPUs to share out, one per training or eval arm at a time: `--devices 0,1,2,3`
    /// (CUDA or wgpu ordinals; the local executor)
    #[arg(long, value_delimiter = ',', value_name = "ORDINALS")]
    pub devices: Vec<usize>,
    /// Keep running independent arms after a failure
    #[arg(short = 'k', long)]
    pub keep_going: bool,
    /// Re-run the targets (all arms if none given) even when cached
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    Local,
    Slurm,
}

pub(super) fn run_command(cache_dir: &Path, args: &RunArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let selected = loaded.selected()?;
    let forced: BTreeSet<usize> = if !args.force {
        BTreeSet::new()
    } else if loaded.targets.is_empty() {
        selected.clone()
    } else {
        loaded
            .dag
            .select(&loaded.targets)
            .map_err(Failure::Usage)?
            .into_iter()
            .filter(|id| {
                let arm = &loaded.dag.arms[*id];
                loaded
                    .targets
                    .iter()
                    .any(|t| *t == arm.stage || *t == arm.name)
            })
            .collect()
    };
    let cache = super::remote::open_cache(cache_dir, &loaded, true)?;
    let keyer = loaded.keyer(&cache)?;
    // Problems a plan can see (a missing input file) are the user's to fix before anything runs.
    invalid_plans(&plan::plan(&keyer, &selected, &forced)?, &loaded)?;
    let kind = match args.executor {
        Some(ExecutorArg::Local) => ExecutorKind::Local,
        Some(ExecutorArg::Slurm) => ExecutorKind::Slurm,
        None => loaded.manifest.executor.kind,
    };
    if !args.devices.is_empty() {
        check_devices(&args.devices, kind, keyer.backend)?;
    }
    let executor: Box<dyn Executor> = match kind {
        ExecutorKind::Local if args.devices.is_empty() => Box::new(Local::default()),
        ExecutorKind::Local => Box::new(Local::on_devices(&args.devices)),
        ExecutorKind::Slurm => Box::new(
            Slurm::new(
                &loaded.manifest.executor,
                cache_dir,
                job_args(&loaded, &keyer)?,
            )
            .map_err(Failure::Usage)?,
        ),
    };
    let jobs = args.jobs.unwrap_or_else(|| match kind {
        ExecutorKind::Local => std::thread::available_parallelism().map_or(1, |n| n.get()),
        ExecutorKind::Slurm => selected.len().max(1),
    });
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        forced,
    };
    let reporter = Reporter::new(args.format == Format::Json);
    let results = scheduler::run(&keyer, &selected, &opts, executor.as_ref(), &reporter);
    reporter.clear();
    // Arms read through from the remote show as hits; say which were downloaded.
    let pulled = cache
        .remote()
        .map(|remote| remote.fetched())
        .unwrap_or_default();
    let pulled_keys: BTreeSet<_> = pulled.iter().map(|(key, _)| key.to_string()).collect();
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "arms": results,
                "pulled_from_remote": pulled_keys,
                "peak_rss_bytes": peak_rss_bytes(),
            }))
            .expect("plain JSON")
        );
    } else {
        print_results(&results);
        if let Some(remote) = cache.remote().filter(|_| !pulled.is_empty()) {
            let bytes: u64 = pulled.iter().map(|(_, b)| b).sum();
            println!(
                "{} of the cached arms were pulled from {} ({:.1} MB)",
                pulled.len(),
                remote.url(),
                bytes as f64 / 1e6
            );
        }
    }
    let failed: Vec<&ArmResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let unavailable = failed.iter().all(|r| r.unavailable);
    let details: Vec<String> = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Failed(msg) => format!("error: {msg}"),
            _ => unreachable!(),
        })
        .collect();
    if unavailable {
        return Err(Failure::Unavailable(details.join("\n")));
    }
    Err(Failure::Stage(details.join("\n")))
}

/// `--devices` numbers GPUs of this machine, for the local executor.
fn check_devices(
    devices: &[usize],
    kind: ExecutorKind,
    backend: crate::model::Backend,
) -> Result<(), Failure> {
    if kind == ExecutorKind::Slurm {
        return Err(Failure::Usage(
            "--devices is for runs on this machine; with --executor slurm, ask Slurm for GPUs \
             in the manifest: [executor.resources] lora-train = [\"--gres=gpu:1\"]"
                .into(),
        ));
    }
    if matches!(backend, crate::model::Backend::Cpu) {
        return Err(Failure::Usage(format!(
            "--devices {devices:?} numbers GPUs, but models run on the CPU here; pass --backend \
             cuda or --backend wgpu (in a build with that feature)"
        )));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = devices.iter().find(|d| !seen.insert(**d)) {
        return Err(Failure::Usage(format!(
            "--devices lists device {twice} twice; each arm gets a device to itself"
        )));
    }
    for &ordinal in devices {
        backend
            .device_at(Some(ordinal))
            .map_err(|e| Failure::Usage(format!("--devices: {e}")))?;
    }
    Ok(())
}

/// What a batch job needs to load the manifest as this run did: its absolute path, the
/// overrides, the resolved backend (it enters keys) and the remote given on the command line.
fn job_args(
    loaded: &super::Loaded,
    keyer: &crate::pipeline::plan::Keyer,
) -> Result<Vec<std::ffi::OsString>, Failure> {
    let manifest = std::path::absolute(&loaded.manifest.path)
        .map_err(|e| Failure::Usage(format!("cannot resolve the manifest path: {e}")))?;
    let mut argv = vec![manifest.into_os_string()];
    for set in &loaded.overrides {
        argv.extend(["--set".into(), set.into()]);
    }
    argv.extend(["--backend".into(), keyer.backend.to_string().into()]);
    if let Some(Some(url)) = super::remote::REMOTE_FLAG.get() {
        argv.extend(["--remote".into(), url.into()]);
    }
    Ok(argv)
}

pub(super) fn print_results(results: &[ArmResult]) {
    let width = results
        .iter()
        .map(|r| r.arm.chars().count())
        .max()
        .unwrap_or(0);
    for r in results {
        let (status, detail) = match &r.outcome {
            Outcome::Hit => ("cached", crate::stages::headline(&r.summary)),
            Outcome::Ran => {
                let secs = match (r.started_unix_ms, r.finished_unix_ms) {
                    (Some(s), Some(f)) => format!("{:>6.1}s  ", (f - s) as f64 / 1000.0),
                    _ => String::new(),
                };
                (
                    "ran",
                    format!("{secs}{}", crate::stages::headline(&r.summary)),
                )
            }
            Outcome::Failed(_) => ("FAILED", String::new()),
            Outcome::Skipped(why) => ("skipped", why.clone()),
        };
        println!(
            "{:<width$}  {:<10}  {:<7}  {detail}",
            r.arm,
            r.kind,
            status,
            width = width.min(NAME_COLUMN)
        );
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    println!(
        "{} arms: {} ran, {} cached, {} failed, {} skipped",
        results.len(),
        count(|o| *o == Outcome::Ran),
        count(|o| *o == Outcome::Hit),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_)))
    );
}

/// This process's peak resident set size (`VmHWM`), where the OS reports it (Linux). A parent's
/// `wait4` cannot tell it: the child's `ru_maxrss` starts from the parent's own high-water mark.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Progress on stderr: a spinner per running arm on a terminal; otherwise (logs, CI) a plain
/// line per arm at most every [`LOG_EVERY`].
struct Reporter {
    quiet: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    rates: Mutex<HashMap<String, Rate>>,
}

const LOG_EVERY: Duration = Duration::from_secs(60);

/// How fast an arm advances in this process: its first report, and when a line was last logged.
struct Rate {
    first: (u64, Instant),
    logged: Instant,
}

impl Rate {
    fn new(done: u64) -> Rate {
        let now = Instant::now();
        Rate {
            first: (done, now),
            logged: now,
        }
    }

    /// Time left at the pace since the first report (a resumed run counts from where it resumed).
    fn eta(&self, done: u64, total: u64) -> Option<Duration> {
        let (start, at) = self.first;
        let advanced = done.checked_sub(start).filter(|&d| d > 0)?;
        let per_unit = at.elapsed().as_secs_f64() / advanced as f64;
        Some(Duration::from_secs_f64(
            per_unit * total.saturating_sub(done) as f64,
        ))
    }
}

/// `1 h 05 min`, `12 min 30 s`, `45 s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

impl Reporter {
    fn new(quiet: bool) -> Reporter {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Reporter {
            quiet,
            multi,
            bars: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// A line above the progress bars (or on stderr).
    fn note(&self, line: String) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Events for Reporter {
    fn started(&self, arm: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                        .expect("valid template"),
                );
                bar.set_prefix(arm.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars
                    .lock()
                    .expect("reporter lock")
                    .insert(arm.to_string(), bar);
            }
            None => eprintln!("running {arm}"),
        }
    }

    fn waiting(&self, arm: &str, holder: &str) {
        self.note(format!("waiting {arm}: {holder} is computing it"));
    }

    fn submitted(&self, arm: &str, job: &str, log: &Path) {
        self.note(format!(
            "submitted {arm} as Slurm job {job} (log: {})",
            log.display()
        ));
    }

    fn progress(&self, arm: &str, done: u64, total: Option<u64>, unit: &str) {
        if self.quiet {
            return;
        }
        let mut rates = self.rates.lock().expect("reporter lock");
        let rate = rates
            .entry(arm.to_string())
            .or_insert_with(|| Rate::new(done));
        let message = match total {
            Some(t) => match rate.eta(done, t) {
                Some(eta) => format!("{done}/{t} {unit}, {} left", human(eta)),
                None => format!("{done}/{t} {unit}"),
            },
            None => format!("{done} {unit}"),
        };
        if let Some(bar) = self.bars.lock().expect("reporter lock").get(arm) {
            bar.set_message(message);
        } else if self.multi.is_none() && rate.logged.elapsed() >= LOG_EVERY {
            rate.logged = Instant::now();
            eprintln!("        {arm}: {message}");
        }
    }

    fn finished(&self, result: &ArmResult) {
        if self.quiet {
            return;
        }
        if let Some(bar) = self.bars.lock().expect("reporter lock").remove(&result.arm) {
            bar.finish_and_clear();
        }
        self.rates
            .lock()
            .expect("reporter lock")
            .remove(&result.arm);
        let line = match &result.outcome {
            Outcome::Ran => format!("done    {}", result.arm),
            Outcome::Failed(msg) => format!(
                "FAILED  {}: {}",
                result.arm,
                msg.lines().next().unwrap_or("")
            ),
            _ => return,
        };
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_follows_the_pace_since_the_first_report() {
        let mut rate = Rate::new(100);
        assert_eq!(rate.eta(100, 1000), None, "no pace before any progress");
        // Resumed at step 100; 10 steps took 2 s, so 890 steps take 178 s.
        rate.first.1 = Instant::now() - Duration::from_secs(2);
        let eta = rate.eta(110, 1000).unwrap().as_secs_f64();
        assert!((177.0..=180.0).contains(&eta), "{eta}");
        assert_eq!(rate.eta(1000, 1000), Some(Duration::ZERO));
    }

    #[test]
    fn durations_read_in_the_largest_useful_units() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(750)), "12 min 30 s");
        assert_eq!(human(Duration::from_secs(3900)), "1 h 05 min");
    }
}
