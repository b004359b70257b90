//! `run --executor slurm` against a real single-node Slurm cluster with accounting
//! (`scripts/slurm-local.sh start`, which CI does; `APITUNE_REQUIRE_SLURM=1` makes its absence
//! fail). The cache is shared with the "compute node" because it is this machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Project, statuses};

/// Whether a Slurm cluster answers; without one the tests say so and pass, unless CI requires it.
fn slurm_up() -> bool {
    let up = Command::new("squeue")
        .args(["--me", "-h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !up {
        assert!(
            std::env::var_os("APITUNE_REQUIRE_SLURM").is_none(),
            "APITUNE_REQUIRE_SLURM is set but no Slurm cluster answers: run `eval \"$(scripts/slurm-local.sh start)\"`"
        );
        eprintln!("no Slurm cluster (squeue fails): skipped; see scripts/slurm-local.sh");
    }
    up
}

/// Jobs named after `key` since `since`, from accounting: (job id, state).
fn jobs_for(key: &str, since: Instant) -> Vec<(String, String)> {
    let name = format!("apitune-{}", &key[..16]);
    let out = Command::new("sacct")
        .args(["-n", "-P", "-X", "-o", "JobIDRaw,State", "--name", &name])
        .arg(format!(
            "--starttime=now-{}seconds",
            since.elapsed().as_secs() + 5
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, state)| (id.to_string(), state.to_string()))
        .collect()
}

/// `jobs_for`, once accounting has recorded `want` jobs (slurmdbd takes a moment).
fn jobs_settled(key: &str, since: Instant, want: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = jobs_for(key, since);
        if jobs.len() >= want || Instant::now() > deadline {
            return jobs;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn arms_by_name(json: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    json["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["arm"].as_str().unwrap().to_string(), a.clone()))
        .collect()
}

/// Every file of a published artifact, by path relative to it (the metadata file aside).
fn artifact_files(cache: &Path, key: &str) -> BTreeMap<String, Vec<u8>> {
    let root = cache.join("artifacts").join(key);
    let mut files = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with(".apitune-entry.json") {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Removes every field named `name`, at any depth.
fn drop_field(json: &mut serde_json::Value, name: &str) {
    match json {
        serde_json::Value::Object(map) => {
            map.remove(name);
            map.values_mut().for_each(|v| drop_field(v, name));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| drop_field(v, name)),
        _ => {}
    }
}

/// The repository's quickstart through Slurm: the same keys and byte-identical artifacts as a
/// local run, and accounting shows exactly one job per arm.
#[test]
fn quickstart_through_slurm_matches_a_local_run_byte_for_byte() {
    if !slurm_up() {
        return;
    }
    let since = Instant::now();
    let p = Project::new();
    let manifest = format!("{}/experiments/quickstart.toml", env!("CARGO_MANIFEST_DIR"));
    let mut slurm = p.command(&["run", &manifest, "--executor", "slurm", "--format", "json"]);
    slurm.arg("--cache").arg(p.path().join("slurm-cache"));
    let slurm = common::Run(slurm.output().unwrap());
    let slurm = arms_by_name(&slurm.expect_code(0).json());
    let mut local = p.command(&["run", &manifest, "--format", "json"]);
    local.arg("--cache").arg(p.path().join("local-cache"));
    let local = common::Run(local.output().unwrap());
    let local = arms_by_name(&local.expect_code(0).json());

    assert_eq!(
        slurm.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    assert_eq!(slurm.len(), 9, "{:?}", slurm.keys());
    for (arm, s) in &slurm {
        let l = &local[arm];
        assert_eq!(s["status"], "ran", "{arm}");
        assert_eq!(s["key"], l["key"], "{arm}: keys differ");
        let key = s["key"].as_str().unwrap();
        let (from_slurm, from_local) = (
            artifact_files(&p.path().join("slurm-cache"), key),
            artifact_files(&p.path().join("local-cache"), key),
        );
        if arm == "report" {
            // The report shows each training run's wall-clock seconds (a run fact, different in
            // any two runs); everything else in it is the same.
            let results = |files: &BTreeMap<String, Vec<u8>>| {
                let mut json: serde_json::Value =
                    serde_json::from_slice(&files["report.json"]).unwrap();
                drop_field(&mut json, "seconds");
                json
            };
            assert_eq!(results(&from_slurm), results(&from_local), "report");
            assert_eq!(
                from_slurm.keys().collect::<Vec<_>>(),
                from_local.keys().collect::<Vec<_>>()
            );
        } else {
            assert_eq!(s["digest"], l["digest"], "{arm}: artifacts differ");
            assert!(from_slurm == from_local, "{arm}: artifact bytes differ");
        }
        let jobs = jobs_settled(key, since, 1);
        assert_eq!(jobs.len(), 1, "{arm}: one job per arm, got {jobs:?}");
        assert_eq!(jobs[0].1, "COMPLETED", "{arm}: {jobs:?}");
        let log = p
            .path()
            .join("slurm-cache/jobs")
            .join(key)
            .join(format!("slurm-{}.out", jobs[0].0));
        assert!(log.is_file(), "{arm}: no log at {}", log.display());
    }
}

/// A chain whose middle arm sleeps for `$DELAY` seconds (not part of any key).
const CHAIN: &str = r#"
[experiment]
name = "slurm"
seed = 1

[stages.a]
kind = "command"
run = "cat input.txt > $APITUNE_OUT/a.txt"
deps = ["input.txt"]

[stages.b]
kind = "command"
needs = ["a"]
run = "sleep ${DELAY:-0}; cat $APITUNE_INPUT_A/a.txt > $APITUNE_OUT/b.txt"

[stages.c]
kind = "command"
needs = ["b"]
run = "wc -c < $APITUNE_INPUT_B/b.txt > $APITUNE_OUT/c.txt"

[executor]
poll_seconds = 0.5
"#;

/// The chain with an input of its own: tests run at once, and sacct counts jobs by key.
fn chain(test: &str) -> Project {
    let p = Project::new();
    p.write("m.toml", CHAIN);
    p.write(
        "input.txt",
        &format!("{test} {:?}\n", std::time::SystemTime::now()),
    );
    p
}

/// The key `plan` gives an arm.
fn planned_key(p: &Project, arm: &str) -> String {
    let plan = p.run(&["plan", "m.toml", "--format", "json"]);
    let json = plan.expect_code(0).json();
    let arm = json
        .as_array()
        .or_else(|| json["arms"].as_array())
        .unwrap()
        .iter()
        .find(|a| a["arm"] == arm)
        .unwrap()
        .clone();
    arm["key"].as_str().unwrap_or_default().to_string()
}

/// Waits until `b`'s job runs (its script is written and Slurm says RUNNING).
fn wait_until_running(p: &Project) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "b's job never ran");
        let jobs_dir = p.path().join("cache/jobs");
        let scripts = common::find_file(&jobs_dir, "job.sh");
        let b = scripts.iter().find(|s| {
            std::fs::read_to_string(s)
                .unwrap_or_default()
                .contains("arm `b`")
        });
        if let Some(b) = b {
            let key = b.parent().unwrap().file_name().unwrap().to_string_lossy();
            let out = Command::new("squeue")
                .args(["--me", "-h", "-o", "%j|%T"])
                .output()
                .unwrap();
            let name = format!("apitune-{}", &key[..16]);
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == format!("{name}|RUNNING"))
            {
                return key.into_owned();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `run --executor slurm` with `b` sleeping `delay` seconds, and returns once b's job
/// runs, with b's key.
fn sweep_with_b_running(p: &Project, delay: &str) -> (std::process::Child, String) {
    let coordinator = p
        .command(&["run", "m.toml", "--executor", "slurm"])
        .env("DELAY", delay)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (coordinator, wait_until_running(p))
}

/// kill -9 of the coordinator while a job runs: the job goes on, and the rerun adopts it
/// (by its key-derived name) instead of submitting the arm again; nothing is computed twice.
#[test]
fn a_killed_coordinator_is_resumed_without_resubmitting_running_jobs() {
    if !slurm_up() {
        return;
    }
    let since = Instant::now();
    let p = chain("killed coordinator");
    let (mut coordinator, b_key) = sweep_with_b_running(&p, "4");
    coordinator.kill().unwrap(); // SIGKILL
    coordinator.wait().unwrap();

    let rerun = p.run(&["run", "m.toml", "--executor", "slurm", "--format", "json"]);
    let statuses = statuses(&rerun.expect_code(0).json());
    assert_eq!(
        statuses,
        [
            ("a".to_string(), "hit".to_string()),
            ("b".to_string(), "ran".to_string()),
            ("c".to_string(), "ran".to_string()),
        ]
    );
    let b_jobs = jobs_settled(&b_key, since, 1);
    assert_eq!(b_jobs.len(), 1, "b was submitted again: {b_jobs:?}");
    let a_jobs = jobs_settled(&planned_key(&p, "a"), since, 1);
    assert_eq!(a_jobs.len(), 1, "a ran twice: {a_jobs:?}");
    p.run(&["verify"]).expect_code(0);
    p.run(&["status", "m.toml", "--exit-code"]).expect_code(0);
}

/// `scancel` of a running job: the arm fails (its exit-status file is missing, whatever Slurm
/// says), nothing partial is published, and the rerun resubmits only that arm and what follows.
#[test]
fn a_cancelled_job_fails_its_arm_and_the_rerun_resubmits_only_what_is_missing() {
    if !slurm_up() {
        return;
    }
    let since = Instant::now();
    let p = chain("cancelled job");
    let (coordinator, b_key) = sweep_with_b_running(&p, "60");
    let job = &jobs_settled(&b_key, since, 1)[0].0;
    assert!(Command::new("scancel").arg(job).status().unwrap().success());
    let out = common::Run(coordinator.wait_with_output().unwrap());
    out.expect_code(3);
    let stderr = out.stderr();
    assert!(
        stderr.contains("without writing its exit status") && stderr.contains("slurm-"),
        "{stderr}"
    );
    assert!(!p.path().join("cache/artifacts").join(&b_key).exists());

    let rerun = p.run(&["run", "m.toml", "--executor", "slurm", "--format", "json"]);
    let statuses = statuses(&rerun.expect_code(0).json());
    assert_eq!(statuses[0], ("a".to_string(), "hit".to_string()));
    assert_eq!(statuses[1], ("b".to_string(), "ran".to_string()));
    assert_eq!(jobs_settled(&b_key, since, 2).len(), 2, "b is resubmitted");
    let a_jobs = jobs_settled(&planned_key(&p, "a"), since, 1);
    assert_eq!(a_jobs.len(), 1, "a is not: {a_jobs:?}");
    p.run(&["verify"]).expect_code(0);
}

/// Where accounting is off (`sacct` fails, as with no slurmdbd) the states come from `squeue`.
#[cfg(unix)]
#[test]
fn without_accounting_the_executor_follows_squeue() {
    use std::os::unix::fs::PermissionsExt;
    if !slurm_up() {
        return;
    }
    let p = chain("no accounting");
    let shim = p.path().join("shim");
    std::fs::create_dir(&shim).unwrap();
    let sacct = shim.join("sacct");
    std::fs::write(
        &sacct,
        "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&sacct, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = common::Run(
        p.command(&["run", "m.toml", "--executor", "slurm", "--format", "json"])
            .env("PATH", path)
            .env("DELAY", "2")
            .output()
            .unwrap(),
    );
    let statuses = statuses(&out.expect_code(0).json());
    assert!(statuses.iter().all(|(_, s)| s == "ran"), "{statuses:?}");
}

/// Ctrl-C (SIGINT) of the coordinator cancels the jobs it waits for.
#[cfg(unix)]
#[test]
fn interrupting_the_coordinator_cancels_its_jobs() {
    if !slurm_up() {
        return;
    }
    let since = Instant::now();
    let p = chain("interrupted");
    let (coordinator, b_key) = sweep_with_b_running(&p, "60");
    assert!(
        Command::new("kill")
            .args(["-INT", &coordinator.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = common::Run(coordinator.wait_with_output().unwrap());
    out.expect_code(130);
    assert!(
        out.stderr().contains("cancelling Slurm jobs"),
        "{}",
        out.stderr()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = jobs_for(&b_key, since);
        if jobs.iter().all(|(_, s)| s.starts_with("CANCELLED")) && !jobs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b's job was not cancelled: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
