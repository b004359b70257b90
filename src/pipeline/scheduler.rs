//! Runs the selected arms: independent arms in parallel on up to `jobs` threads, each arm once all
//! its inputs are published. A failure stops new work (or, with `keep_going`, only the arms that
//! depend on it); arms already running finish and publish.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::plan::Keyer;
use crate::cache::{Digest, EntryMeta, Key, KeyManifest};
use crate::stages::{Input, RunContext};

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    /// Arms to re-run even when cached.
    pub forced: BTreeSet<usize>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// Taken from the cache.
    Hit,
    Ran,
    Failed(String),
    /// Not run because an upstream arm failed (or the run stopped at a failure).
    Skipped(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct ArmResult {
    pub arm: String,
    pub kind: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub key: Option<String>,
    pub digest: Option<String>,
    /// Wall-clock start and end of the stage's own work (absent for hits and skips).
    pub started_unix_ms: Option<u64>,
    pub finished_unix_ms: Option<u64>,
    pub summary: Value,
    /// A failure caused by the machine (full disk, read-only file system, cache held elsewhere),
    /// not by the stage's work.
    #[serde(skip)]
    pub unavailable: bool,
}

/// What the scheduler tells its caller as arms progress.
pub trait Events: Sync {
    fn started(&self, _arm: &str) {}
    /// Another process (`holder`) is computing the arm; this run waits for its result.
    fn waiting(&self, _arm: &str, _holder: &str) {}
    /// The arm was handed to a batch scheduler as `job`; its log is at `log`.
    fn submitted(&self, _arm: &str, _job: &str, _log: &Path) {}
    fn progress(&self, _arm: &str, _done: u64, _total: Option<u64>, _unit: &str) {}
    fn finished(&self, _result: &ArmResult) {}
}

pub struct Quiet;
impl Events for Quiet {}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a stale arm's stage runs: in this process ([`Local`]) or as a batch job
/// ([`super::slurm::Slurm`]). Either way the artifact is published into the same cache.
pub trait Executor: Sync {
    fn compute(&self, job: &ArmJob) -> anyhow::Result<Computed>;
}

/// One stale arm to compute: its key and key manifest, its inputs' artifacts.
pub struct ArmJob<'a> {
    pub keyer: &'a Keyer<'a>,
    pub id: usize,
    pub key: Key,
    pub key_manifest: &'a KeyManifest,
    pub upstream: &'a HashMap<usize, (Key, Digest)>,
    /// Run even when cached.
    pub forced: bool,
    pub events: &'a dyn Events,
}

impl ArmJob<'_> {
    pub fn arm(&self) -> &super::dag::Arm {
        &self.keyer.dag.arms[self.id]
    }
}

/// What an executor did with an arm.
pub struct Computed {
    pub entry: crate::cache::Entry,
    /// `false` when another process published it while this one waited.
    pub ran: bool,
}

/// Runs stages in this process, one arm per thread; with GPUs given, each arm that runs a model
/// has one of them to itself.
#[derive(Default)]
pub struct Local {
    devices: Option<Devices>,
}

impl Local {
    pub fn on_devices(ordinals: &[usize]) -> Local {
        Local {
            devices: Some(Devices::new(ordinals)),
        }
    }
}

/// Stage kinds that run a model, and so take a device.
const DEVICE_KINDS: [&str; 3] = ["pretrain", "lora-train", "eval"];

/// GPUs handed out one per arm: an arm waits until one is free.
pub struct Devices {
    free: Mutex<Vec<usize>>,
    returned: Condvar,
}

impl Devices {
    pub fn new(ordinals: &[usize]) -> Devices {
        let mut free = ordinals.to_vec();
        free.reverse(); // handed out in the order given
        Devices {
            free: Mutex::new(free),
            returned: Condvar::new(),
        }
    }

    pub fn take(&self) -> DeviceLease<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ordinal) = free.pop() {
                return DeviceLease {
                    pool: self,
                    ordinal,
                };
            }
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One device, back in its pool when dropped.
pub struct DeviceLease<'a> {
    pool: &'a Devices,
    pub ordinal: usize,
}

impl Drop for DeviceLease<'_> {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        free.push(self.ordinal);
        self.pool.returned.notify_one();
    }
}

impl Executor for Local {
    fn compute(&self, job: &ArmJob) -> anyhow::Result<Computed> {
        let cache = job.keyer.cache;
        let arm = job.arm();
        // Another run sharing this cache may be computing the same key: wait for it, then
        // take its result rather than computing the arm twice.
        let _claim = cache.claim(&job.key, &|holder| job.events.waiting(&arm.name, holder))?;
        if !job.forced
            && let Some(entry) = cache.lookup(&job.key)?
        {
            return Ok(Computed { entry, ran: false });
        }
        let lease = self
            .devices
            .as_ref()
            .filter(|_| DEVICE_KINDS.contains(&arm.kind.kind()))
            .map(Devices::take);
        job.events.started(&arm.name);
        let entry = execute(job, lease.as_ref().map(|l| l.ordinal))
            .map_err(|e| e.context(format!("stage `{}` failed", arm.name)))?;
        Ok(Computed { entry, ran: true })
    }
}

pub fn run(
    keyer: &Keyer,
    selected: &BTreeSet<usize>,
    opts: &RunOptions,
    executor: &dyn Executor,
    events: &dyn Events,
) -> Vec<ArmResult> {
    let dag = keyer.dag;
    let order: Vec<usize> = dag
        .order
        .iter()
        .copied()
        .filter(|id| selected.contains(id))
        .collect();
    let mut done: HashMap<usize, (Key, Digest)> = HashMap::new();
    let mut results: HashMap<usize, ArmResult> = HashMap::new();
    let mut running = BTreeSet::new();
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<(usize, ArmResult, Option<(Key, Digest)>)>();
    std::thread::scope(|scope| {
        loop {
            if !stop {
                for &id in &order {
                    if running.len() >= opts.jobs.max(1) {
                        break;
                    }
                    if results.contains_key(&id) || running.contains(&id) {
                        continue;
                    }
                    let arm = &dag.arms[id];
                    if let Some(bad) = failed_input(arm, &results) {
                        let why = format!("upstream `{}` did not complete", dag.arms[bad].name);
                        let result = skipped(keyer, id, why);
                        events.finished(&result);
                        results.insert(id, result);
                        continue;
                    }
                    if !arm.inputs.iter().all(|i| done.contains_key(i)) {
                        continue;
                    }
                    let inputs: HashMap<usize, (Key, Digest)> =
                        arm.inputs.iter().map(|i| (*i, done[i])).collect();
                    running.insert(id);
                    let tx = tx.clone();
                    let forced = opts.forced.contains(&id);
                    scope.spawn(move || {
                        let (result, digest) =
                            run_arm(keyer, id, &inputs, forced, executor, events);
                        let _ = tx.send((id, result, digest));
                    });
                }
            }
            if running.is_empty() {
                break;
            }
            let Ok((id, result, digest)) = rx.recv() else {
                break;
            };
            running.remove(&id);
            if let Some(d) = digest {
                done.insert(id, d);
            }
            if matches!(result.outcome, Outcome::Failed(_)) && !opts.keep_going {
                stop = true;
            }
            events.finished(&result);
            results.insert(id, result);
        }
    });
    in_order(keyer, &order, results, events)
}

/// The results in run order; arms never started are reported as skipped.
fn in_order(
    keyer: &Keyer,
    order: &[usize],
    mut results: HashMap<usize, ArmResult>,
    events: &dyn Events,
) -> Vec<ArmResult> {
    order
        .iter()
        .map(|id| {
            results.remove(id).unwrap_or_else(|| {
                let result = skipped(
                    keyer,
                    *id,
                    "not started: the run stopped at a failure (use -k to keep going)".into(),
                );
                events.finished(&result);
                result
            })
        })
        .collect()
}

/// An input of `arm` that finished without a result (failed or skipped).
fn failed_input(arm: &super::dag::Arm, results: &HashMap<usize, ArmResult>) -> Option<usize> {
    arm.inputs.iter().copied().find(|i| {
        results
            .get(i)
            .is_some_and(|r| !matches!(r.outcome, Outcome::Hit | Outcome::Ran))
    })
}

fn skipped(keyer: &Keyer, id: usize, why: String) -> ArmResult {
    let arm = &keyer.dag.arms[id];
    ArmResult {
        arm: arm.name.clone(),
        kind: arm.kind.kind().to_string(),
        outcome: Outcome::Skipped(why),
        key: None,
        digest: None,
        started_unix_ms: None,
        finished_unix_ms: None,
        summary: Value::Null,
        unavailable: false,
    }
}

fn run_arm(
    keyer: &Keyer,
    id: usize,
    upstream: &HashMap<usize, (Key, Digest)>,
    forced: bool,
    executor: &dyn Executor,
    events: &dyn Events,
) -> (ArmResult, Option<(Key, Digest)>) {
    let input_digests: HashMap<usize, Digest> =
        upstream.iter().map(|(i, (_, d))| (*i, *d)).collect();
    let mut result = skipped(keyer, id, String::new());
    let fail = |mut result: ArmResult, e: anyhow::Error| {
        result.unavailable = is_environment_failure(&e);
        result.outcome = Outcome::Failed(format!("{e:#}"));
        (result, None)
    };
    let km = match keyer.key_manifest(id, &input_digests) {
        Ok(km) => km,
        Err(e) => return fail(result, e),
    };
    let key = km.key();
    result.key = Some(key.to_string());
    if !forced {
        match keyer.cache.lookup(&key) {
            Ok(Some(entry)) => {
                result.outcome = Outcome::Hit;
                result.digest = Some(entry.digest.to_string());
                result.summary = entry.meta.summary.clone();
                return (result, Some((key, entry.digest)));
            }
            Ok(None) => {}
            Err(e) => return fail(result, e.into()),
        }
    }
    let job = ArmJob {
        keyer,
        id,
        key,
        key_manifest: &km,
        upstream,
        forced,
        events,
    };
    match executor.compute(&job) {
        Ok(Computed { entry, ran }) => {
            result.digest = Some(entry.digest.to_string());
            result.summary = entry.meta.summary.clone();
            if ran {
                result.outcome = Outcome::Ran;
                let started = entry.meta.started_unix_ms;
                result.started_unix_ms = Some(started);
                result.finished_unix_ms =
                    Some(started + (entry.meta.duration_s * 1000.0).round() as u64);
            } else {
                result.outcome = Outcome::Hit;
            }
            (result, Some((key, entry.digest)))
        }
        Err(e) => fail(result, e),
    }
}

/// Runs the arm's stage (on `device`, if given) into a staging directory and publishes it under
/// its key.
fn execute(job: &ArmJob, device: Option<usize>) -> anyhow::Result<crate::cache::Entry> {
    let ArmJob {
        keyer,
        key,
        key_manifest: km,
        upstream,
        events,
        ..
    } = *job;
    let key = &key;
    let arm = job.arm();
    let inputs = verified_inputs(keyer, arm, upstream)?;
    let staging = keyer.cache.staging(key)?;
    let work_dir = keyer.cache.work_dir(key)?;
    let progress =
        |done: u64, total: Option<u64>, unit: &str| events.progress(&arm.name, done, total, unit);
    let ctx = RunContext {
        arm: &arm.name,
        base_dir: &keyer.manifest.base_dir,
        seed: keyer.manifest.experiment.seed,
        models: &keyer.manifest.models,
        backend: keyer.backend,
        device,
        file_hashes: km.0.get("files").unwrap_or(&Value::Null),
        cache_root: keyer.cache.root(),
        inputs: &inputs,
        out_dir: &staging.dir,
        work_dir: &work_dir,
        progress: &progress,
    };
    let started_ms = now_ms();
    let clock = Instant::now();
    let summary = run_stage(arm, &ctx)?;
    let duration_s = clock.elapsed().as_secs_f64();
    let meta = EntryMeta {
        stage: arm.name.clone(),
        kind: arm.kind.kind().to_string(),
        key_manifest: km.clone(),
        started_unix_ms: started_ms,
        duration_s,
        summary,
    };
    Ok(keyer.cache.publish(staging, meta)?)
}

/// The stage's own work; a panic in it becomes this arm's failure, not the whole run's.
fn run_stage(arm: &super::dag::Arm, ctx: &RunContext) -> anyhow::Result<Value> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        arm.kind.run(&arm.params, ctx)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(anyhow::anyhow!(
            "internal error (a bug in apitune, please report it): {what}"
        ))
    })
}

/// The arm's inputs, each re-hashed before the stage reads it: a file corrupted on disk since it
/// was published (which its stat does not show) must not flow into a new result.
fn verified_inputs(
    keyer: &Keyer,
    arm: &super::dag::Arm,
    upstream: &HashMap<usize, (Key, Digest)>,
) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::with_capacity(arm.inputs.len());
    for i in &arm.inputs {
        let up = &keyer.dag.arms[*i];
        let key = upstream[i].0;
        let Some(entry) = keyer.cache.lookup(&key)? else {
            anyhow::bail!(
                "input `{}` vanished from the cache (removed by another process?); run again to recompute it",
                up.name
            );
        };
        if let Err(reason) = keyer.cache.verify_for_use(&entry)? {
            anyhow::bail!("input `{}`: {reason}; run again to recompute it", up.name);
        }
        inputs.push(Input {
            stage: up.stage.clone(),
            arm: up.name.clone(),
            kind: up.kind.kind().to_string(),
            key: key.to_string(),
            dir: entry.dir,
            run_facts: entry.meta.summary,
        });
    }
    Ok(inputs)
}

/// A full disk, a read-only file system, or a cache held by another run: not the stage's fault.
pub fn is_environment_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<crate::cache::CacheError>()
            .is_some_and(|c| c.is_unavailable())
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(crate::cache::is_environment_error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Six arms on two devices: never two on one device, never more than two at once.
    #[test]
    fn each_arm_has_its_device_to_itself() {
        let devices = Devices::new(&[3, 5]);
        let in_use: Mutex<Vec<usize>> = Mutex::new(Vec::new());
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let lease = devices.take();
                    {
                        let mut using = in_use.lock().unwrap();
                        assert!(!using.contains(&lease.ordinal), "shared {}", lease.ordinal);
                        using.push(lease.ordinal);
                        peak.fetch_max(using.len(), Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(30));
                    in_use.lock().unwrap().retain(|d| *d != lease.ordinal);
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        let mut left = devices.free.into_inner().unwrap();
        left.sort();
        assert_eq!(left, [3, 5], "every device comes back");
    }
}
