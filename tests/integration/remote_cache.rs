//! The remote cache: push, pull, read-through, refusal of tampered objects, create-if-absent.
//! Against a directory always, and against a real S3-protocol server when one is running
//! (`scripts/s3-local.sh start`, which CI does; `APITUNE_REQUIRE_S3=1` makes its absence fail).

use std::path::{Path, PathBuf};

use crate::common::{self, Project, statuses};

/// Three arms in a chain; `big` writes 40 MB, above the size that is uploaded in parts.
const MANIFEST: &str = r#"
[experiment]
name = "remote"
seed = 1

[stages.a]
kind = "command"
run = "cat input.txt > $APITUNE_OUT/a.txt"
deps = ["input.txt"]

[stages.b]
kind = "command"
needs = ["a"]
run = "cat $APITUNE_INPUT_A/a.txt $APITUNE_INPUT_A/a.txt > $APITUNE_OUT/b.txt"

[stages.big]
kind = "command"
needs = ["b"]
run = "yes apitune | head -c 40000000 > $APITUNE_OUT/big.bin; cp $APITUNE_INPUT_B/b.txt $APITUNE_OUT/"
"#;

fn project() -> Project {
    let p = Project::new();
    p.write("m.toml", MANIFEST);
    p.write("input.txt", "hello remote\n");
    p
}

fn run_statuses(p: &Project, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["run", "m.toml", "--format", "json"];
    args.extend(extra);
    statuses(&p.run(&args).expect_code(0).json())
}

/// Every artifact file of `p`'s cache, by (arm file name, contents).
fn artifact_files(p: &Project) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = ["a.txt", "b.txt", "big.bin"]
        .iter()
        .flat_map(|name| common::find_file(&p.path().join("cache/artifacts"), name))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn json_of(p: &Project, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    p.run(&all).expect_code(code).json()
}

/// Push from one cache, pull into an empty one: status and check pass with nothing run, and
/// every file is byte-identical.
fn push_then_pull_needs_no_run(remote: &str) {
    let producer = project();
    run_statuses(&producer, &[]);
    let pushed = json_of(&producer, &["push", "m.toml", "--remote", remote], 0);
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 3, "{pushed}");
    assert!(pushed["bytes"].as_u64().unwrap() > 40_000_000, "{pushed}");
    let again = json_of(&producer, &["push", "m.toml", "--remote", remote], 0);
    assert_eq!(again["pushed"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_there"], 3, "{again}");

    let consumer = project();
    let pulled = json_of(&consumer, &["pull", "m.toml", "--remote", remote], 0);
    assert_eq!(pulled["pulled"].as_array().unwrap().len(), 3, "{pulled}");
    assert_eq!(pulled["refused"].as_array().unwrap().len(), 0, "{pulled}");
    consumer
        .run(&["status", "m.toml", "--exit-code"])
        .expect_code(0);
    consumer.run(&["check", "m.toml"]).expect_code(0);
    let ran = run_statuses(&consumer, &[]);
    assert!(ran.iter().all(|(_, s)| s == "hit"), "{ran:?}");
    assert_eq!(artifact_files(&consumer), artifact_files(&producer));
}

#[test]
fn push_then_pull_through_a_directory_needs_no_run() {
    let remote = tempfile::tempdir().unwrap();
    push_then_pull_needs_no_run(&remote.path().to_string_lossy());
}

/// A second writer of the same keys (same files, but its own metadata: another publication
/// time) never replaces what the remote holds.
#[test]
fn an_entry_on_the_remote_is_never_replaced() {
    let remote = tempfile::tempdir().unwrap();
    let url = format!("file://{}", remote.path().display());
    let first = project();
    run_statuses(&first, &[]);
    json_of(&first, &["push", "m.toml", "--remote", &url], 0);
    let entries = remote.path().join("apitune-cache-v1/entries");
    let before = dir_contents(&entries);
    assert_eq!(before.len(), 3);

    let second = project();
    std::thread::sleep(std::time::Duration::from_millis(20));
    run_statuses(&second, &[]);
    let pushed = json_of(&second, &["push", "m.toml", "--remote", &url], 0);
    assert_eq!(pushed["already_there"], 3, "{pushed}");
    assert_eq!(dir_contents(&entries), before);
}

fn dir_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

/// A blob altered on the remote is refused on pull, reported, and never reaches the cache;
/// what does not depend on it is still pulled.
#[test]
fn a_tampered_remote_object_is_refused_and_never_used() {
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_string_lossy().into_owned();
    let producer = project();
    run_statuses(&producer, &[]);
    json_of(&producer, &["push", "m.toml", "--remote", &url], 0);
    // b.txt's blob: same length, other bytes.
    let b = std::fs::read(&common::find_file(&producer.path().join("cache/artifacts"), "b.txt")[0])
        .unwrap();
    let blob = remote
        .path()
        .join("apitune-cache-v1/blobs")
        .join(blake3::hash(&b).to_hex().as_str());
    let mut tampered = b.clone();
    tampered[0] ^= 0x20;
    std::fs::write(&blob, &tampered).unwrap();

    let consumer = project();
    let out = consumer.run(&["pull", "m.toml", "--remote", &url]);
    out.expect_code(3);
    assert!(
        out.stderr().contains("refused") && out.stderr().contains("b.txt"),
        "{}",
        out.stderr()
    );
    // `a` arrived; `b` was refused, so `big` (keyed on b's digest) cannot even be looked up.
    let files = artifact_files(&consumer);
    assert_eq!(
        files.len(),
        1,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(files[0].0, "a.txt");
    consumer
        .run(&["status", "m.toml", "--exit-code"])
        .expect_code(1);
    // Without the remote, the run recomputes b and big; the tampered bytes were never used.
    let ran = run_statuses(&consumer, &[]);
    assert!(
        ran.contains(&("b".to_string(), "ran".to_string())),
        "{ran:?}"
    );
    assert_eq!(artifact_files(&consumer), artifact_files(&producer));
}

/// `run` reads through: a remote named in the manifest's `[cache]` serves every arm.
#[test]
fn run_reads_through_the_manifests_remote() {
    let remote = tempfile::tempdir().unwrap();
    let producer = project();
    run_statuses(&producer, &[]);
    let url = remote.path().to_string_lossy().into_owned();
    json_of(&producer, &["push", "m.toml", "--remote", &url], 0);

    let consumer = project();
    consumer.write(
        "m.toml",
        &format!("[cache]\nremote = \"file://{url}\"\n{MANIFEST}"),
    );
    let out = consumer.run(&["run", "m.toml", "--format", "json"]);
    let json = out.expect_code(0).json();
    let ran = statuses(&json);
    assert!(ran.iter().all(|(_, s)| s == "hit"), "{ran:?}");
    assert_eq!(
        json["pulled_from_remote"].as_array().unwrap().len(),
        3,
        "{json}"
    );
    assert_eq!(artifact_files(&consumer), artifact_files(&producer));
}

#[test]
fn push_without_a_remote_says_how_to_name_one() {
    let p = project();
    let out = p.run(&["push", "m.toml"]);
    out.expect_code(2);
    assert!(out.stderr().contains("--remote"), "{}", out.stderr());
    let out = p.run(&["pull", "m.toml", "--remote", "ftp://somewhere/x"]);
    out.expect_code(3);
    assert!(out.stderr().contains("unknown scheme"), "{}", out.stderr());
}

/// The same round trip through a real S3-protocol server (s3s-fs from `scripts/s3-local.sh`).
#[test]
fn push_then_pull_through_s3_needs_no_run() {
    let Ok(bucket) = std::env::var("APITUNE_TEST_S3") else {
        assert!(
            std::env::var_os("APITUNE_REQUIRE_S3").is_none(),
            "APITUNE_REQUIRE_S3 is set but no S3 server is: run `eval \"$(scripts/s3-local.sh start)\"`"
        );
        eprintln!("no S3 server (APITUNE_TEST_S3 unset): skipped; see scripts/s3-local.sh");
        return;
    };
    let prefix = format!(
        "{bucket}/test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    push_then_pull_needs_no_run(&prefix);
}
