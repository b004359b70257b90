//! Crash safety: a writer killed with SIGKILL at random moments (mid-write, mid-publish,
//! mid-gc, mid-verify) never leaves a corrupt or partial entry visible, loses no entry whose
//! publish returned, and the next writer cleans up and carries on.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common;
use apitune::cache::memo::read_memo;
use apitune::cache::{Cache, Key, digest_dir};

#[path = "../support/rng.rs"]
mod rng;

use rng::Rng;

/// `artifacts/` holds only complete entries (nothing that lookup would have to hide), and
/// every entry's files re-hash to its digest.
fn assert_all_visible_entries_intact(root: &Path) -> usize {
    let reader = Cache::open_read_only(root).unwrap();
    let entries = reader.entries().unwrap();
    let dirs = fs::read_dir(root.join("artifacts")).unwrap().count();
    assert_eq!(
        dirs,
        entries.len(),
        "artifacts/ holds a directory that is not a valid entry"
    );
    for entry in &entries {
        assert_eq!(
            digest_dir(&entry.dir).unwrap(),
            entry.digest,
            "entry {} is corrupt",
            entry.key
        );
        assert_eq!(
            reader.lookup(&entry.key).unwrap().unwrap().digest,
            entry.digest
        );
    }
    entries.len()
}

#[test]
fn kill_9_never_leaves_a_corrupt_entry() {
    let root = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let mut published = HashSet::new();
    let mut gc_eligible = HashSet::new();
    let mut kills_mid_write = 0;
    let mut rounds = 0;

    while rounds < 8 || (kills_mid_write < 3 && rounds < 30) {
        rounds += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_apitune-test-helper"))
            .arg("publish-until-killed")
            .arg(root.path())
            .arg(seed.wrapping_add(rounds).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("child did not open the cache");
            if line.contains("CHILD-READY") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "child ended by itself ({status}); it must run until killed"
        );
        reader.join().unwrap();
        for line in lines.try_iter() {
            if let Some(key) = line.strip_prefix("PUBLISHED ") {
                published.insert(key.parse::<Key>().unwrap());
            } else if let Some(key) = line.strip_prefix("GC-ELIGIBLE ") {
                gc_eligible.insert(key.parse::<Key>().unwrap());
            }
        }
        if !common::staged_in_tmp(root.path()).is_empty() {
            kills_mid_write += 1;
        }
        // Before any writer cleans up: what a reader sees is whole.
        assert_all_visible_entries_intact(root.path());
        assert_memos_intact(root.path());
    }
    eprintln!(
        "{rounds} kills, {kills_mid_write} left staging/trash behind; {} entries published, {} gc-eligible",
        published.len(),
        gc_eligible.len()
    );
    assert!(
        kills_mid_write >= 1,
        "no kill landed mid-publish; the test exercised nothing"
    );
    assert!(
        published.len() >= rounds as usize,
        "children published too little to be meaningful"
    );

    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert!(
        common::staged_in_tmp(root.path()).is_empty(),
        "open removes what dead writers staged"
    );
    let report = cache.verify(true).unwrap();
    assert!(
        report.quarantined.is_empty()
            && report.quarantined_names.is_empty()
            && report.memos_damaged.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.ok, report.checked);
    for key in published.difference(&gc_eligible) {
        let entry = cache
            .lookup(key)
            .unwrap()
            .unwrap_or_else(|| panic!("published entry {key} was lost"));
        assert_eq!(digest_dir(&entry.dir).unwrap(), entry.digest);
    }
    let live = assert_all_visible_entries_intact(root.path());
    assert_eq!(live, cache.entries().unwrap().len());
    assert_eq!(live, report.ok);
}

/// Every memo log reads as intact lines, at most the last one cut short by the kill.
fn assert_memos_intact(root: &Path) {
    for dir in fs::read_dir(root.join("memo")).unwrap() {
        for log in fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = log.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let read = read_memo::<serde_json::Value>(&path).unwrap();
                assert!(read.damaged.is_none(), "{:?}", read.damaged);
            }
        }
    }
}
