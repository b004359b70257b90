//! Running manifests: cache hits and misses, explain, parallelism, failures, tampering, crashes.

use crate::common;

use std::time::Duration;

use common::{Project, statuses};

const CHAIN: &str = r#"
[experiment]
name = "chain"
seed = 1

[stages.a]
kind = "command"
run = "cat input.txt > $APITUNE_OUT/a.txt"
deps = ["input.txt"]

[stages.b]
kind = "command"
needs = ["a"]
run = "cat $APITUNE_INPUT_A/a.txt > $APITUNE_OUT/b.txt; echo $TAG >> $APITUNE_OUT/b.txt"
env = { TAG = "one" }

[stages.c]
kind = "command"
needs = ["b"]
run = "wc -l < $APITUNE_INPUT_B/b.txt > $APITUNE_OUT/c.txt"

[stages.side]
kind = "command"
run = "echo side > $APITUNE_OUT/s.txt"
"#;

fn chain() -> Project {
    let p = Project::new();
    p.write("m.toml", CHAIN);
    p.write("input.txt", "hello\n");
    p
}

fn run_json(p: &Project, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["run", "m.toml", "--format", "json"];
    all.extend(args);
    let out = p.run(&all);
    out.expect_code(0);
    statuses(&out.json())
}

fn names_with(status: &[(String, String)], wanted: &str) -> Vec<String> {
    status
        .iter()
        .filter(|(_, s)| s == wanted)
        .map(|(a, _)| a.clone())
        .collect()
}

#[test]
fn rerun_with_no_change_runs_nothing() {
    let p = chain();
    assert_eq!(
        names_with(&run_json(&p, &[]), "ran"),
        ["a", "b", "c", "side"]
    );
    let second = run_json(&p, &[]);
    assert_eq!(names_with(&second, "hit"), ["a", "b", "c", "side"]);
    p.run(&["status", "m.toml", "--exit-code"]).expect_code(0);
}

#[test]
fn param_change_reruns_exactly_that_stage_and_downstream() {
    let p = chain();
    run_json(&p, &[]);
    let out = p.run(&[
        "status",
        "m.toml",
        "--exit-code",
        "-S",
        "stages.b.env.TAG=two",
    ]);
    out.expect_code(1);
    assert!(
        out.stdout().contains("params.env.TAG \"one\" → \"two\""),
        "{}",
        out.stdout()
    );
    let second = run_json(&p, &["-S", "stages.b.env.TAG=two"]);
    assert_eq!(names_with(&second, "ran"), ["b", "c"]);
    assert_eq!(names_with(&second, "hit"), ["a", "side"]);
}

#[test]
fn early_cutoff_when_upstream_output_is_unchanged() {
    let p = chain();
    run_json(&p, &[]);
    // `b` re-runs with a different command but writes the same bytes: `c` stays cached.
    let second = run_json(
        &p,
        &[
            "-S",
            "stages.b.run=cat $APITUNE_INPUT_A/a.txt > $APITUNE_OUT/b.txt && echo $TAG >> $APITUNE_OUT/b.txt",
        ],
    );
    assert_eq!(names_with(&second, "ran"), ["b"]);
    assert_eq!(names_with(&second, "hit"), ["a", "c", "side"]);
}

#[test]
fn file_input_is_keyed_by_content() {
    let p = chain();
    run_json(&p, &[]);
    p.write("input.txt", "hello\n"); // rewritten, same content: still cached
    assert!(names_with(&run_json(&p, &[]), "ran").is_empty());
    p.write("input.txt", "world\n");
    let plan = p.run(&["plan", "m.toml"]);
    assert!(
        plan.expect_code(0)
            .stdout()
            .contains("file `input.txt` changed"),
        "{}",
        plan.stdout()
    );
    assert_eq!(names_with(&run_json(&p, &[]), "ran"), ["a", "b", "c"]);
}

#[test]
fn explain_lists_field_level_differences() {
    let p = chain();
    run_json(&p, &[]);
    let out = p.run(&["explain", "m.toml", "b", "-S", "stages.b.env.TAG=two"]);
    out.expect_code(0);
    let text = out.stdout();
    assert!(text.contains("b: miss"), "{text}");
    assert!(text.contains("params.env.TAG: \"one\" → \"two\""), "{text}");
    let json = p
        .run(&[
            "explain",
            "m.toml",
            "b",
            "--format",
            "json",
            "-S",
            "stages.b.env.TAG=two",
        ])
        .json();
    assert_eq!(
        json["arms"][0]["nearest"]["differences"][0]["field"],
        "params.env.TAG"
    );
    let downstream = p.run(&["explain", "m.toml", "c", "-S", "stages.b.env.TAG=two"]);
    assert!(
        downstream.stdout().contains("c: runs after b"),
        "{}",
        downstream.stdout()
    );
}

#[test]
fn plan_json_reports_hit_miss_and_pending() {
    let p = chain();
    let out = p.run(&["plan", "m.toml", "--format", "json"]);
    let s = statuses(&out.expect_code(0).json());
    assert_eq!(
        s,
        [
            ("a".into(), "miss".into()),
            ("b".into(), "pending".into()),
            ("c".into(), "pending".into()),
            ("side".into(), "miss".into())
        ]
    );
    assert_eq!(out.json()["arms"][0]["reason"], "never ran");
    // --dry-run is the same and runs nothing
    p.run(&["run", "m.toml", "--dry-run"]).expect_code(0);
    assert!(
        !p.path().join("cache/artifacts").exists()
            || std::fs::read_dir(p.path().join("cache/artifacts"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn targets_select_a_subgraph_with_upstream() {
    let p = chain();
    let ran = run_json(&p, &["b"]);
    assert_eq!(
        ran.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn force_reruns_targets() {
    let p = chain();
    run_json(&p, &[]);
    let again = run_json(&p, &["-f", "b"]);
    assert_eq!(names_with(&again, "ran"), ["b"]);
}

const PARALLEL: &str = r#"
[experiment]
name = "par"

[stages.left]
kind = "command"
run = "sleep 1; echo l > $APITUNE_OUT/x"

[stages.right]
kind = "command"
run = "sleep 1; echo r > $APITUNE_OUT/x"

[stages.join]
kind = "command"
needs = ["left", "right"]
run = "cat $APITUNE_INPUT_LEFT/x $APITUNE_INPUT_RIGHT/x > $APITUNE_OUT/x"
"#;

#[test]
fn independent_stages_overlap_in_time() {
    let p = Project::new();
    p.write("m.toml", PARALLEL);
    let out = p.run(&["run", "m.toml", "-j", "2", "--format", "json"]);
    let json = out.expect_code(0).json();
    let span = |name: &str| {
        let arm = json["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == name)
            .unwrap();
        (
            arm["started_unix_ms"].as_u64().unwrap(),
            arm["finished_unix_ms"].as_u64().unwrap(),
        )
    };
    let (l0, l1) = span("left");
    let (r0, r1) = span("right");
    let (j0, _) = span("join");
    assert!(
        l0 < r1 && r0 < l1,
        "left {l0}..{l1} and right {r0}..{r1} did not overlap"
    );
    assert!(j0 >= l1.max(r1), "join started before its inputs finished");
    // with one job they must not overlap
    let q = Project::new();
    q.write("m.toml", PARALLEL);
    let json = q
        .run(&["run", "m.toml", "-j", "1", "--format", "json"])
        .json();
    let arms = json["arms"].as_array().unwrap();
    let (a, b) = (&arms[0], &arms[1]);
    assert!(
        a["finished_unix_ms"].as_u64() <= b["started_unix_ms"].as_u64()
            || b["finished_unix_ms"].as_u64() <= a["started_unix_ms"].as_u64()
    );
}

const FAILING: &str = r#"
[experiment]
name = "fail"

[stages.bad]
kind = "command"
run = "echo doomed; exit 7"

[stages.after_bad]
kind = "command"
needs = ["bad"]
run = "true"

[stages.good]
kind = "command"
needs = ["slow"]
run = "echo ok > $APITUNE_OUT/x"

[stages.slow]
kind = "command"
run = "sleep 0.5; echo s > $APITUNE_OUT/x"
"#;

#[test]
fn failure_exits_3_and_keep_going_runs_independent_branches() {
    let p = Project::new();
    p.write("m.toml", FAILING);
    let out = p.run(&["run", "m.toml", "-j", "2", "-k", "--format", "json"]);
    out.expect_code(3);
    let s = statuses(&out.json());
    let get = |n: &str| s.iter().find(|(a, _)| a == n).unwrap().1.clone();
    assert_eq!(get("bad"), "failed");
    assert_eq!(get("after_bad"), "skipped");
    assert_eq!(get("good"), "ran");
    assert!(
        out.stderr().contains("doomed"),
        "the failing command's output is shown: {}",
        out.stderr()
    );
    // without -k, nothing new starts after the failure
    let q = Project::new();
    q.write("m.toml", FAILING);
    let out = q.run(&["run", "m.toml", "-j", "1", "--format", "json"]);
    out.expect_code(3);
    let s = statuses(&out.json());
    assert_eq!(s.iter().find(|(a, _)| a == "good").unwrap().1, "skipped");
}

#[test]
fn tampered_artifact_is_quarantined_and_rebuilt() {
    let p = chain();
    run_json(&p, &[]);
    let artifacts = p.path().join("cache/artifacts");
    let victim = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.join("b.txt").exists())
        .expect("artifact of b");
    std::fs::write(victim.join("b.txt"), "tampered\n").unwrap();
    let out = p.run(&["verify"]);
    out.expect_code(1);
    assert!(out.stdout().contains("quarantined"), "{}", out.stdout());
    let rerun = run_json(&p, &[]);
    assert_eq!(names_with(&rerun, "ran"), ["b"]);
    p.run(&["verify"]).expect_code(0);
}

#[test]
fn gc_dry_run_lists_unreachable_entries_with_sizes() {
    let p = chain();
    run_json(&p, &[]);
    run_json(
        &p,
        &["-S", "stages.side.run=echo other > $APITUNE_OUT/s.txt"],
    );
    let out = p.run(&["gc", "m.toml", "--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout().contains("would remove"), "{}", out.stdout());
    assert!(
        out.stdout().contains(" B)"),
        "sizes are listed: {}",
        out.stdout()
    );
    // nothing was removed: the other variant is still cached
    let s = run_json(
        &p,
        &["-S", "stages.side.run=echo other > $APITUNE_OUT/s.txt"],
    );
    assert!(names_with(&s, "ran").is_empty());
    p.run(&["gc", "m.toml"]).expect_code(0);
    let s = run_json(
        &p,
        &["-S", "stages.side.run=echo other > $APITUNE_OUT/s.txt"],
    );
    assert_eq!(names_with(&s, "ran"), ["side"]);
}

const SLOW: &str = r#"
[experiment]
name = "crash"

[stages.first]
kind = "command"
run = "echo 1 > $APITUNE_OUT/one"

[stages.slow]
kind = "command"
needs = ["first"]
run = "head -c 100000 /dev/zero > $APITUNE_OUT/big; sleep 3; echo done > $APITUNE_OUT/done"
"#;

#[test]
fn kill_during_a_stage_leaves_no_corrupt_entry_and_rerun_completes() {
    let p = Project::new();
    p.write("m.toml", SLOW);
    let mut child = p
        .command(&["run", "m.toml", "--format", "json"])
        .spawn()
        .unwrap();
    // wait until the slow stage has started writing
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // A writer stages in its session directory, tmp/<session>/<key>.<n>/.
        let writing = common::find_file(&p.path().join("cache/tmp"), "big")
            .iter()
            .any(|f| !f.to_string_lossy().contains("/artifacts/"));
        if writing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slow stage never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // the interrupted arm is not cached; the finished one is
    let plan = p.run(&["plan", "m.toml", "--format", "json"]);
    assert_eq!(
        statuses(&plan.expect_code(0).json()),
        [
            ("first".into(), "hit".into()),
            ("slow".into(), "miss".into())
        ]
    );
    let out = p.run(&["run", "m.toml", "--format", "json"]);
    assert_eq!(
        statuses(&out.expect_code(0).json()),
        [
            ("first".into(), "hit".into()),
            ("slow".into(), "ran".into())
        ]
    );
    p.run(&["verify"]).expect_code(0);
    let tmp_left = std::fs::read_dir(p.path().join("cache/tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(tmp_left, 0, "leftovers of the killed run were cleaned");
}

const METRICS: &str = r#"
[experiment]
name = "gate"

[stages.score]
kind = "command"
run = "echo '{\"bleu\": 19.5, \"per_lang\": {\"curl\": {\"syntax\": 0.97}}}' > $APITUNE_OUT/metrics.json"

[expect]
"score.bleu" = { value = 19.0, tol = 1.0 }
"score.per_lang.curl.syntax" = { min = 0.95 }
"#;

#[test]
fn check_needs_everything_cached_and_every_expectation_to_hold() {
    let p = Project::new();
    p.write("m.toml", METRICS);
    let stale = p.run(&["check", "m.toml"]);
    stale.expect_code(1);
    assert!(
        stale.stdout().contains("stale   score"),
        "{}",
        stale.stdout()
    );
    p.run(&["run", "m.toml"]).expect_code(0);
    let ok = p.run(&["check", "m.toml", "--format", "json"]);
    let json = ok.expect_code(0).json();
    assert_eq!(json["passed"], true);
    assert_eq!(json["expectations"][0]["value"], 19.5);
    // an expectation out of range fails without running anything
    let out = p.run(&["check", "m.toml", "-S", "expect.\"score.bleu\".value=25.0"]);
    out.expect_code(1);
    assert!(
        out.stdout()
            .contains("FAIL    score.bleu  = 19.5  expected 25 ± 1"),
        "{}",
        out.stdout()
    );
    // a param change makes the arm stale: check fails and names it
    let out = p.run(&["check", "m.toml", "-S", "stages.score.env.X=abc"]);
    out.expect_code(1);
    assert!(
        out.stdout().contains("stale   score  params.env.X"),
        "{}",
        out.stdout()
    );
    // a metric that does not exist is reported, not ignored
    let out = p.run(&["check", "m.toml", "-S", "expect.\"score.nope\".min=1"]);
    out.expect_code(1);
    assert!(
        out.stdout().contains("no metric `nope`"),
        "{}",
        out.stdout()
    );
}

fn scored_stage(name: &str, value: f64, low: f64, high: f64) -> String {
    let results = format!(
        r#"{{"sacrebleu_corpus": {value}, "overall": {{"intervals": {{"metrics": {{"sacrebleu_corpus": {{"low": {low}, "high": {high}}}}}}}}}}}"#
    );
    format!(
        "[stages.{name}]\nkind = \"command\"\nrun = \"echo '{}' > $APITUNE_OUT/results.json\"\n\n",
        results.replace('"', "\\\"")
    )
}

#[test]
fn check_compares_arms_and_their_intervals() {
    let p = Project::new();
    let manifest = format!(
        "[experiment]\nname = \"curve\"\n\n{}{}[expect]\n\"big.sacrebleu_corpus\" = {{ above = \"small.sacrebleu_corpus\", beyond_interval = true }}\n",
        scored_stage("big", 20.0, 15.0, 25.0),
        scored_stage("small", 10.0, 8.0, 12.0)
    );
    p.write("m.toml", &manifest);
    p.run(&["run", "m.toml"]).expect_code(0);
    let ok = p.run(&["check", "m.toml", "--format", "json"]);
    let json = ok.expect_code(0).json();
    assert_eq!(json["expectations"][0]["value"], 20.0, "{json}");

    // Above, but the intervals overlap: not a difference this test set can show.
    p.write(
        "m.toml",
        &manifest.replace(
            &scored_stage("small", 10.0, 8.0, 12.0),
            &scored_stage("small", 10.0, 8.0, 16.0),
        ),
    );
    p.run(&["run", "m.toml"]).expect_code(0);
    let out = p.run(&["check", "m.toml"]);
    out.expect_code(1);
    assert!(
        out.stdout().contains("within resampling noise"),
        "{}",
        out.stdout()
    );
    let check_with = |set: &str| p.run(&["check", "m.toml", "-S", set]);
    // Without beyond_interval the plain comparison holds.
    let out = check_with("expect.\"big.sacrebleu_corpus\".beyond_interval=false");
    out.expect_code(0);
    // Below the other arm fails and says by how much.
    let out = check_with("expect.\"small.sacrebleu_corpus\".above=\"big.sacrebleu_corpus\"");
    out.expect_code(1);
    assert!(
        out.stdout()
            .contains("not above `big.sacrebleu_corpus` = 20"),
        "{}",
        out.stdout()
    );
    // An `above` that names no arm is a manifest error.
    let out = check_with("expect.\"big.sacrebleu_corpus\".above=\"tiny.sacrebleu_corpus\"");
    out.expect_code(2);
    assert!(out.stderr().contains("names no arm"), "{}", out.stderr());
}

// --- Reliability regressions (each names the defect it guards) ---

fn cached_file(p: &Project, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(p.path().join("cache/artifacts"))
        .unwrap()
        .map(|e| e.unwrap().path().join(name))
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no cached {name}"))
}

#[test]
fn a_foreign_directory_is_never_adopted_as_a_cache() {
    let p = chain();
    let foreign = p.path().join("mine");
    std::fs::create_dir_all(foreign.join("artifacts")).unwrap();
    std::fs::create_dir_all(foreign.join("tmp")).unwrap();
    std::fs::write(foreign.join("artifacts/thesis.txt"), "years of work").unwrap();
    std::fs::write(foreign.join("tmp/notes.txt"), "notes").unwrap();
    for args in [
        &["verify"][..],
        &["verify", "--repair"],
        &["gc", "m.toml"],
        &["run", "m.toml"],
    ] {
        let mut cmd = p.command(args);
        cmd.arg("--cache").arg(&foreign);
        let out = common::Run(cmd.output().unwrap());
        out.expect_code(2);
        assert!(
            out.stderr().contains("is not an apitune cache"),
            "{}",
            out.stderr()
        );
    }
    assert_eq!(
        std::fs::read_to_string(foreign.join("artifacts/thesis.txt")).unwrap(),
        "years of work"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("tmp/notes.txt")).unwrap(),
        "notes"
    );
    assert!(!foreign.join("quarantine").exists());
}

/// A fresh clone once shipped `cache/.gitkeep`, and the README's `apitune run` refused that
/// directory as foreign.
#[test]
fn a_directory_holding_only_a_gitkeep_is_adopted_as_a_cache() {
    let p = chain();
    std::fs::create_dir_all(p.path().join("cache")).unwrap();
    std::fs::write(p.path().join("cache/.gitkeep"), "").unwrap();
    let out = p.run(&["run", "m.toml"]);
    out.expect_code(0);
    assert!(p.path().join("cache/apitune-cache").is_file());
    assert!(p.path().join("cache/.gitkeep").is_file());
}

#[cfg(unix)]
#[test]
fn symlinked_cache_subdirectories_are_refused_and_their_targets_kept() {
    let p = chain();
    run_json(&p, &[]);
    for sub in ["tmp", "work", "quarantine", "memo"] {
        let outside = p.path().join(format!("outside-{sub}"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "keep me").unwrap();
        let link = p.path().join("cache").join(sub);
        std::fs::remove_dir_all(&link).ok();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for args in [
            &["run", "m.toml"][..],
            &["verify", "--repair"],
            &["gc", "m.toml"],
        ] {
            let out = p.run(args);
            out.expect_code(2);
            assert!(
                out.stderr().contains("is a symbolic link"),
                "{}",
                out.stderr()
            );
        }
        assert_eq!(
            std::fs::read_to_string(outside.join("precious")).unwrap(),
            "keep me",
            "{sub}"
        );
        std::fs::remove_file(&link).unwrap();
    }
    run_json(&p, &[]);
}

#[test]
fn a_changed_artifact_is_detected_before_use_and_recomputed() {
    let p = chain();
    run_json(&p, &[]);
    let victim = cached_file(&p, "b.txt");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0x01; // same size: only the content (and the stat) betrays it
    std::fs::write(&victim, &bytes).unwrap();
    let status = p.run(&["status", "m.toml", "--exit-code"]);
    status.expect_code(1);
    assert!(status.stdout().contains("damaged"), "{}", status.stdout());
    p.run(&["check", "m.toml"]).expect_code(1);
    let rerun = run_json(&p, &[]);
    assert_eq!(
        names_with(&rerun, "ran"),
        ["b"],
        "only the damaged arm is recomputed (c's input is unchanged)"
    );
    p.run(&["verify"]).expect_code(0);
}

#[cfg(unix)]
#[test]
fn published_files_are_read_only_whatever_the_stage_wrote() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.write(
        "m.toml",
        "[experiment]\nname = \"modes\"\n\n[stages.w]\nkind = \"command\"\nrun = \"mkdir $APITUNE_OUT/d && echo x > $APITUNE_OUT/d/f && chmod 777 $APITUNE_OUT/d $APITUNE_OUT/d/f\"\n",
    );
    p.run(&["run", "m.toml"]).expect_code(0);
    let file = cached_file(&p, "d/f");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

#[test]
fn inputs_outside_the_project_need_an_explicit_opt_in() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cr3t").unwrap();
    let p = Project::new();
    let manifest = |opt_in: &str| {
        format!(
            "[experiment]\nname = \"scope\"\n{opt_in}\n[stages.a]\nkind = \"command\"\nrun = \"true\"\ndeps = [\"{}\", \"../../../../../../../../etc/passwd\"]\n",
            outside.path().join("secret.txt").display()
        )
    };
    p.write("m.toml", &manifest(""));
    for command in ["validate", "plan"] {
        let out = p.run(&[command, "m.toml"]);
        out.expect_code(2);
        assert!(
            out.stderr().contains("m.toml:4:")
                && out.stderr().contains("outside the project")
                && out.stderr().contains("inputs_outside"),
            "{command}: {}",
            out.stderr()
        );
    }
    let out = p.run(&["run", "m.toml"]);
    out.expect_code(2);
    assert!(
        !p.path().join("cache/file-hashes.json").exists()
            || !std::fs::read_to_string(p.path().join("cache/file-hashes.json"))
                .unwrap()
                .contains("secret")
    );
    let allowed = format!(
        "inputs_outside = [\"{}\", \"/etc\"]",
        outside.path().display()
    );
    p.write("m.toml", &manifest(&allowed));
    p.run(&["run", "m.toml"]).expect_code(0);
}

#[test]
fn identical_runs_into_fresh_caches_give_identical_keys_and_timings_stay_out_of_artifacts() {
    // Command stages that record their own duration in the summary: run facts must not enter
    // the digest, so the second run's keys equal the first's.
    let p = chain();
    let keys = |cache: &str| {
        let mut cmd = p.command(&["run", "m.toml", "--format", "json"]);
        cmd.arg("--cache").arg(p.path().join(cache));
        let out = common::Run(cmd.output().unwrap());
        out.expect_code(0);
        let mut keys: Vec<String> = out.json()["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys("one"), keys("two"));
}

#[test]
fn overlapping_runs_share_the_cache_and_compute_each_arm_once() {
    let p = Project::new();
    p.write("m.toml", SLOW);
    let first = p
        .command(&["run", "m.toml", "--format", "json"])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first run is inside `slow` (its staging directory exists).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !common::staged_in_tmp(&p.path().join("cache"))
        .iter()
        .any(|s| s.contains('/'))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never started `slow`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Maintenance needs the cache to itself; the exit code says "not now", not "failed".
    let verify = p.run(&["verify"]);
    let second = p.command(&["run", "m.toml"]).output();
    let first = common::Run(first.wait_with_output().unwrap());
    let second = common::Run(second.unwrap());
    first.expect_code(0);
    second.expect_code(0);
    verify.expect_code(4);
    assert!(
        verify.stderr().contains("in use by other apitune runs"),
        "{}",
        verify.stderr()
    );
    let slow = statuses(&first.json())
        .into_iter()
        .find(|(arm, _)| arm == "slow")
        .unwrap();
    assert_eq!(slow.1, "ran");
    let line = second
        .stdout()
        .lines()
        .find(|l| l.starts_with("slow "))
        .map(str::to_string);
    assert!(
        line.as_deref().is_some_and(|l| l.contains("cached")),
        "the second run takes the first one's result: {line:?}"
    );
    assert!(
        second.stderr().contains("waiting slow:"),
        "{}",
        second.stderr()
    );
    p.run(&["verify"]).expect_code(0);
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let p = chain();
    let mut child = p
        .command(&["schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before apitune writes
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(status.code(), Some(101), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_reported_once_with_its_path_and_exits_4() {
    // Needs a small file system of our own: a tmpfs, which only root may mount.
    let p = chain();
    let mnt = p.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED a_full_disk_is_reported_once_with_its_path_and_exits_4: cannot mount a tmpfs here (not root)"
        );
        return;
    }
    let cache = mnt.join("cache");
    let run = |args: &[&str]| {
        let mut cmd = p.command(args);
        cmd.arg("--cache").arg(&cache);
        common::Run(cmd.output().unwrap())
    };
    run(&["run", "m.toml", "a"]).expect_code(0);
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 1000000 /dev/zero > {}/filler",
            mnt.display()
        ))
        .status();
    // A stage that writes nothing itself: the failure is apitune's own write into the cache.
    let out = run(&["run", "m.toml", "side", "-S", "stages.side.run=true"]);
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&mnt)
        .status();
    out.expect_code(4);
    let err = out.stderr();
    assert!(err.contains("no space left"), "{err}");
    for line in err.lines() {
        assert!(
            line.to_lowercase().matches("no space left").count() <= 1,
            "said twice: {line}"
        );
    }
    assert!(
        err.contains(&cache.display().to_string()),
        "names the path: {err}"
    );
    assert!(!err.contains("os error 28"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_in_a_directory_dependency_is_an_error_not_a_hang() {
    let p = Project::new();
    p.write("s/data.txt", "x");
    std::os::unix::fs::symlink(p.path().join("s"), p.path().join("s/l1")).unwrap();
    std::os::unix::fs::symlink(p.path().join("s"), p.path().join("s/l2")).unwrap();
    p.write("m.toml", "[experiment]\nname = \"loop\"\n\n[stages.a]\nkind = \"command\"\nrun = \"true\"\ndeps = [\"s\"]\n");
    let started = std::time::Instant::now();
    let out = p.run(&["plan", "m.toml"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    out.expect_code(2);
    assert!(
        out.stderr().contains("loop") && out.stderr().contains("m.toml:"),
        "{}",
        out.stderr()
    );
}

#[test]
fn devices_number_gpus_of_this_machine_and_are_refused_where_there_are_none() {
    let p = chain();
    let cpu = p.run(&["run", "m.toml", "--backend", "cpu", "--devices", "0,1"]);
    cpu.expect_code(2);
    assert!(cpu.stderr().contains("numbers GPUs"), "{}", cpu.stderr());
    let twice = p.run(&["run", "m.toml", "--backend", "cpu", "--devices", "0,0"]);
    twice.expect_code(2);
    let slurm = p.run(&["run", "m.toml", "--executor", "slurm", "--devices", "0"]);
    slurm.expect_code(2);
    assert!(
        slurm.stderr().contains("--gres=gpu:1"),
        "{}",
        slurm.stderr()
    );
    assert!(
        !p.path().join("cache/artifacts").exists()
            || std::fs::read_dir(p.path().join("cache/artifacts"))
                .unwrap()
                .next()
                .is_none(),
        "nothing ran"
    );
}
