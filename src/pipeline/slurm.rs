//! The Slurm executor: each stale arm becomes one `sbatch` job that runs `apitune job` on a
//! compute node against this same cache directory (on a shared file system), which publishes
//! the arm's artifact there and writes its exit status next to the job's log in `jobs/<key>/`.
//!
//! That exit-status file, not the scheduler's job state, decides success: a job Slurm reports
//! COMPLETED but that wrote no status (or no artifact) failed. Job names derive from the arm's
//! key (`apitune-<16 hex digits>`), so a rerun adopts a job still queued or running for the
//! same key instead of submitting it twice. States come from one `sacct` call for all
//! outstanding jobs per poll interval; jobs `sacct` does not know (accounting off, or not yet
//! recorded) are looked up in `squeue`. Ctrl-C (or SIGTERM) cancels the jobs with `scancel`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::scheduler::{ArmJob, Computed, Executor, Local};
use crate::cache::Key;
use crate::manifest::ExecutorSection;

/// What `apitune job` writes when it ends: `jobs/<key>/exit-<job id>.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExitStatus {
    pub ok: bool,
    /// `ran`, `hit` (another process had published it) or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub host: String,
}

impl ExitStatus {
    pub fn file_name(job_id: &str) -> String {
        format!("exit-{job_id}.json")
    }
}

/// Job name for a key: stable across runs, so a rerun finds the job of an earlier one.
pub fn job_name(key: &Key) -> String {
    format!("apitune-{}", &key.to_string()[..16])
}

const DEFAULT_POLL: Duration = Duration::from_secs(5);
/// How often a waiting arm looks for its job's exit-status file.
const STATUS_CHECK: Duration = Duration::from_millis(250);
/// After Slurm says a job ended, how long its exit-status file may take to appear (a shared
/// file system's attribute cache can hide a fresh file for a few seconds).
const STATUS_GRACE: Duration = Duration::from_secs(10);

pub struct Slurm {
    settings: ExecutorSection,
    poll: Duration,
    /// `apitune` and its global flags; each job appends `job --arm … --key …` and `tail`.
    head: Vec<OsString>,
    /// The manifest, its overrides and the backend, as each job must load them.
    tail: Vec<OsString>,
    /// Jobs of earlier runs still queued or running, by name.
    existing: HashMap<String, String>,
    monitor: Mutex<Monitor>,
}

#[derive(Default)]
struct Monitor {
    last: Option<Instant>,
    states: HashMap<String, String>,
    /// Turned off at the first `sacct` failure (accounting storage disabled).
    no_accounting: bool,
}

/// Jobs this process submitted or adopted and has not seen end: what Ctrl-C cancels.
static ACTIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn active() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slurm {
    /// Checks the settings and that Slurm answers; `Err` is a usage error for the user.
    pub fn new(
        settings: &ExecutorSection,
        cache_root: &Path,
        job_args: Vec<OsString>,
    ) -> Result<Slurm, String> {
        let kinds: Vec<&str> = crate::stages::registry().iter().map(|k| k.kind()).collect();
        for kind in settings.resources.keys().chain(&settings.local_kinds) {
            if !kinds.contains(&kind.as_str()) {
                return Err(format!(
                    "[executor]: unknown stage kind `{kind}`; the kinds are {}",
                    kinds.join(", ")
                ));
            }
        }
        let poll = match settings.poll_seconds {
            None => DEFAULT_POLL,
            Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
            Some(s) => return Err(format!("[executor] poll_seconds = {s}: must be above 0")),
        };
        let exe = match &settings.apitune {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find this apitune executable: {e}"))?,
        };
        let cache_root = std::path::absolute(cache_root)
            .map_err(|e| format!("cannot resolve {}: {e}", cache_root.display()))?;
        let head = vec![exe.into(), "--cache".into(), cache_root.clone().into()];
        let existing = queued_jobs(&cache_root).map_err(|e| {
            format!(
                "{e:#}; is Slurm installed and `squeue` on PATH? (scripts/slurm-local.sh starts \
                 a local cluster)"
            )
        })?;
        let _ = ctrlc::set_handler(cancel_and_exit);
        Ok(Slurm {
            settings: settings.clone(),
            poll,
            head,
            tail: job_args,
            existing,
            monitor: Mutex::new(Monitor::default()),
        })
    }

    /// Submits the arm (or adopts its queued job); returns the job id.
    fn submit(&self, job: &ArmJob, dir: &Path) -> anyhow::Result<String> {
        let name = job_name(&job.key);
        if let Some(id) = self.existing.get(&name) {
            return Ok(id.clone());
        }
        let arm = job.arm();
        let mut argv = self.head.clone();
        argv.extend(["job".into(), "--arm".into(), arm.name.clone().into()]);
        argv.extend(["--key".into(), job.key.to_string().into()]);
        if job.forced {
            argv.push("--force".into());
        }
        argv.extend(self.tail.iter().cloned());
        let script = dir.join("job.sh");
        let line = shlex::try_join(argv.iter().map(|a| a.to_str().unwrap_or_default()))
            .context("a job argument cannot be quoted for the shell")?;
        if argv.iter().any(|a| a.to_str().is_none()) {
            bail!("the job's command line is not valid UTF-8: {argv:?}");
        }
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# arm `{}` (key {}), written by `apitune run --executor slurm`\nexec {line}\n",
                arm.name, job.key
            ),
        )
        .with_context(|| format!("cannot write {}", script.display()))?;
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg(format!("--job-name={name}"))
            .arg(format!("--output={}", dir.join("slurm-%j.out").display()));
        for (flag, value) in [
            ("--partition", &self.settings.partition),
            ("--account", &self.settings.account),
            ("--time", &self.settings.time),
        ] {
            if let Some(value) = value {
                sbatch.arg(format!("{flag}={value}"));
            }
        }
        sbatch.args(&self.settings.sbatch_args);
        if let Some(extra) = self.settings.resources.get(arm.kind.kind()) {
            sbatch.args(extra);
        }
        let out = run_tool(sbatch.arg(&script))?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.split(';').next().unwrap_or_default().trim().to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            bail!("sbatch printed no job id: {out:?}");
        }
        Ok(id)
    }

    /// Waits until the job's exit status is written or Slurm says it ended.
    fn wait(&self, id: &str, status_file: &Path) -> anyhow::Result<Result<ExitStatus, String>> {
        // The status file is one stat away; the scheduler is asked at most once per `poll`.
        let nap = self.poll.min(STATUS_CHECK);
        let mut ended_at: Option<(Instant, String)> = None;
        loop {
            if let Some(status) = read_status(status_file)? {
                return Ok(Ok(status));
            }
            match &ended_at {
                Some((at, state)) if at.elapsed() > STATUS_GRACE => {
                    return Ok(Err(state.clone()));
                }
                Some(_) => {}
                None => {
                    if let Some(state) = self.state(id).filter(|s| is_terminal(s)) {
                        ended_at = Some((Instant::now(), state));
                    }
                }
            }
            std::thread::sleep(nap);
        }
    }

    /// The job's last known state, refreshed for all outstanding jobs at most once per poll
    /// interval.
    fn state(&self, id: &str) -> Option<String> {
        let mut monitor = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        if monitor.last.is_none_or(|at| at.elapsed() >= self.poll) {
            let ids: Vec<String> = active().iter().cloned().collect();
            if !ids.is_empty() {
                let states = poll_states(&ids, &mut monitor.no_accounting);
                monitor.states.extend(states);
            }
            monitor.last = Some(Instant::now());
        }
        monitor.states.get(id).cloned()
    }
}

impl Executor for Slurm {
    fn compute(&self, job: &ArmJob) -> anyhow::Result<Computed> {
        let arm = job.arm();
        if self
            .settings
            .local_kinds
            .iter()
            .any(|k| k == arm.kind.kind())
        {
            return Local::default().compute(job);
        }
        let cache = job.keyer.cache;
        // Absolute: Slurm records the script's path, by which a rerun recognises its jobs.
        let dir = std::path::absolute(cache.jobs_dir(&job.key)?)?;
        let id = self
            .submit(job, &dir)
            .with_context(|| format!("cannot submit `{}` to Slurm", arm.name))?;
        active().insert(id.clone());
        let log = dir.join(format!("slurm-{id}.out"));
        job.events.submitted(&arm.name, &id, &log);
        let status_file = dir.join(ExitStatus::file_name(&id));
        let waited = self.wait(&id, &status_file);
        active().remove(&id);
        let failed = |why: String| {
            anyhow::anyhow!(
                "stage `{}` failed in Slurm job {id}: {why}; its log: {}",
                arm.name,
                log.display()
            )
        };
        match waited? {
            Ok(status) if status.ok => match cache.lookup(&job.key)? {
                Some(entry) => Ok(Computed {
                    entry,
                    ran: status.outcome == "ran",
                }),
                None => Err(failed(
                    "the job reported success but its artifact is not in the cache (is the \
                     cache directory shared with the compute node?)"
                        .into(),
                )),
            },
            Ok(status) => Err(failed(
                status
                    .error
                    .unwrap_or_else(|| "the job reported a failure".into()),
            )),
            Err(state) => Err(failed(format!(
                "the job ended ({state}) without writing its exit status (killed, cancelled, \
                 out of time or memory?)"
            ))),
        }
    }
}

fn read_status(path: &Path) -> anyhow::Result<Option<ExitStatus>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not an exit status", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs a Slurm command; its stdout, or an error with what it printed.
fn run_tool(command: &mut Command) -> anyhow::Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .with_context(|| format!("cannot run `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// This user's queued or running apitune jobs for the cache at `cache_root`, by name. The same
/// key may be computing for another cache; only a job whose script lies in ours is adopted.
fn queued_jobs(cache_root: &Path) -> anyhow::Result<HashMap<String, String>> {
    let out = run_tool(Command::new("squeue").args(["--me", "-h", "-o", "%i|%j|%T|%o"]))?;
    let ours = cache_root.join(crate::cache::JOBS_DIR);
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '|');
            let (id, name, state, script) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (name.starts_with("apitune-")
                && !is_terminal(state)
                && Path::new(script).starts_with(&ours))
            .then(|| (name.to_string(), id.to_string()))
        })
        .collect())
}

/// States of `ids`: from `sacct` (one call), then `squeue` for those it does not know; a job
/// neither knows has ended (`ENDED`).
fn poll_states(ids: &[String], no_accounting: &mut bool) -> BTreeMap<String, String> {
    let mut states = BTreeMap::new();
    if !*no_accounting {
        let sacct = run_tool(Command::new("sacct").args([
            "-n",
            "-P",
            "-X",
            "-o",
            "JobIDRaw,State",
            "-j",
            &ids.join(","),
        ]));
        match sacct {
            Ok(out) => {
                for line in out.lines() {
                    if let Some((id, state)) = line.split_once('|') {
                        // `CANCELLED by 0` → `CANCELLED`.
                        let state = state.split_whitespace().next().unwrap_or_default();
                        states.insert(id.to_string(), state.to_string());
                    }
                }
            }
            Err(_) => *no_accounting = true,
        }
    }
    let unknown: Vec<&String> = ids.iter().filter(|id| !states.contains_key(*id)).collect();
    if !unknown.is_empty()
        && let Ok(out) = run_tool(Command::new("squeue").args(["--me", "-h", "-o", "%i|%T"]))
    {
        let queued: HashMap<&str, &str> = out
            .lines()
            .filter_map(|line| line.split_once('|'))
            .collect();
        for id in unknown {
            let state = queued.get(id.as_str()).copied().unwrap_or("ENDED");
            states.insert(id.clone(), state.to_string());
        }
    }
    states
}

/// Slurm job states after which a job never runs again.
fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "REVOKED"
            | "ENDED"
    )
}

/// Ctrl-C or SIGTERM: cancel the jobs this run is waiting for, then stop.
fn cancel_and_exit() {
    let ids: Vec<String> = active().iter().cloned().collect();
    if !ids.is_empty() {
        eprintln!("interrupted: cancelling Slurm jobs {}", ids.join(" "));
        let _ = Command::new("scancel").args(&ids).status();
    }
    std::process::exit(130);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_stable_and_short() {
        let key: Key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap();
        assert_eq!(job_name(&key), "apitune-0011223344556677");
    }

    #[test]
    fn ended_states_are_terminal_and_running_ones_not() {
        for state in [
            "COMPLETED",
            "CANCELLED",
            "TIMEOUT",
            "ENDED",
            "OUT_OF_MEMORY",
        ] {
            assert!(is_terminal(state), "{state}");
        }
        for state in [
            "PENDING",
            "RUNNING",
            "COMPLETING",
            "CONFIGURING",
            "REQUEUED",
        ] {
            assert!(!is_terminal(state), "{state}");
        }
    }
}
