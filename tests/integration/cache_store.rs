//! The cache store: publish/lookup, index loss and damage, tampering, locking, gc, stat cache.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::common;
use apitune::cache::{
    Cache, CacheError, ENTRY_FILE, Entry, EntryMeta, Key, KeyManifest, digest_dir,
};
use serde_json::json;

fn manifest(n: u64) -> KeyManifest {
    KeyManifest::new()
        .with("kind", "normalize")
        .with("version", 1)
        .with("params", json!({"n": n}))
}

fn meta(manifest: KeyManifest) -> EntryMeta {
    EntryMeta {
        stage: "split".into(),
        kind: "normalize".into(),
        key_manifest: manifest,
        started_unix_ms: 1,
        duration_s: 0.5,
        summary: json!({"records": 3}),
    }
}

/// Publishes an entry with a couple of files (one in a subdirectory) whose contents depend on `n`.
fn publish(cache: &Cache, n: u64) -> Entry {
    let m = manifest(n);
    let staging = cache.staging(&m.key()).unwrap();
    fs::write(
        staging.dir.join("train.jsonl"),
        format!("{{\"n\":{n}}}\n").repeat(100),
    )
    .unwrap();
    fs::create_dir(staging.dir.join("sub")).unwrap();
    fs::write(staging.dir.join("sub/stats.json"), format!("[{n}]")).unwrap();
    cache.publish(staging, meta(m)).unwrap()
}

fn children(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn publish_then_lookup_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let key = manifest(1).key();
    assert!(cache.lookup(&key).unwrap().is_none());
    let work = cache.work_dir(&key).unwrap();
    fs::write(work.join("checkpoint"), "half done").unwrap();

    let published = publish(&cache, 1);
    assert_eq!(published.key, key);
    assert_eq!(
        published.dir,
        root.path().join("artifacts").join(key.to_string())
    );
    assert_eq!(published.digest, digest_dir(&published.dir).unwrap());
    let paths: Vec<&str> = published.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["sub/stats.json", "train.jsonl"]);
    assert_eq!(published.bytes, 3 + 800);
    assert!(published.dir.join(ENTRY_FILE).is_file());
    assert!(!work.exists(), "publish removes the work dir");
    assert!(common::staged_in_tmp(root.path()).is_empty());

    let found = cache
        .lookup(&key)
        .unwrap()
        .expect("published entry is found");
    assert_eq!(found.digest, published.digest);
    assert_eq!(found.files, published.files);
    assert_eq!(found.meta, published.meta);
    assert_eq!(
        fs::read_to_string(found.file("sub/stats.json")).unwrap(),
        "[1]"
    );
    assert!(cache.lookup(&manifest(2).key()).unwrap().is_none());
    assert_eq!(cache.entries().unwrap().len(), 1);

    // A reader in another handle sees the same entry without touching the index.
    let reader = Cache::open_read_only(root.path()).unwrap();
    assert_eq!(
        reader.lookup(&key).unwrap().unwrap().digest,
        published.digest
    );
    drop(cache);
    let reopened = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(
        reopened.lookup(&key).unwrap().unwrap().digest,
        published.digest
    );
    assert!(
        !children(root.path()).iter().any(|n| n.contains("broken")),
        "a clean reopen must not find the index damaged"
    );
}

#[test]
fn publishing_a_key_twice_keeps_the_first_entry() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let first = publish(&cache, 1);
    let m = manifest(1);
    let staging = cache.staging(&m.key()).unwrap();
    fs::write(staging.dir.join("other.txt"), "different output").unwrap();
    let staged_dir = staging.dir.clone();
    let second = cache.publish(staging, meta(m)).unwrap();
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.created_unix_ms, first.created_unix_ms);
    assert!(!staged_dir.exists());
}

#[test]
fn parallel_publishers_including_a_race_on_one_key() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..5 {
                    publish(cache, t * 100 + i);
                    publish(cache, 999); // every thread also publishes the same key
                }
            });
        }
    });
    let entries = cache.entries().unwrap();
    assert_eq!(entries.len(), 21);
    let report = cache.verify(false).unwrap();
    assert_eq!((report.checked, report.ok), (21, 21));
    assert!(common::staged_in_tmp(root.path()).is_empty());
}

#[test]
fn failed_stage_leaves_nothing_and_key_mismatch_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let staging = cache.staging(&manifest(1).key()).unwrap();
    fs::write(staging.dir.join("partial"), "x").unwrap();
    let dir = staging.dir.clone();
    drop(staging); // the stage failed
    assert!(!dir.exists());

    let staging = cache.staging(&manifest(1).key()).unwrap();
    let err = cache.publish(staging, meta(manifest(2))).unwrap_err();
    assert!(matches!(err, CacheError::KeyMismatch { .. }), "{err}");
    assert!(cache.entries().unwrap().is_empty());
    assert!(common::staged_in_tmp(root.path()).is_empty());

    let staging = cache.staging(&manifest(3).key()).unwrap();
    fs::write(staging.dir.join(ENTRY_FILE), "mine").unwrap();
    let err = cache
        .publish(staging, meta(manifest(3)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reserved"), "{err}");
}

#[test]
fn lookup_survives_a_deleted_index() {
    let root = tempfile::tempdir().unwrap();
    let (one, two) = {
        let cache = Cache::open_exclusive(root.path()).unwrap();
        (publish(&cache, 1), publish(&cache, 2))
    };
    fs::remove_dir_all(root.path().join("index.sled")).unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(cache.lookup(&one.key).unwrap().unwrap().digest, one.digest);
    assert_eq!(cache.entries().unwrap().len(), 2);
    let report = cache.verify(true).unwrap();
    assert_eq!(
        (report.ok, report.reindexed, report.dropped_index),
        (2, 0, 0),
        "{report:?}"
    );
    assert_eq!(cache.lookup(&two.key).unwrap().unwrap().files, two.files);
}

#[test]
fn a_damaged_index_is_moved_aside_and_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let one = publish(&Cache::open_exclusive(root.path()).unwrap(), 1);
    // An index path sled cannot open at all.
    fs::remove_dir_all(root.path().join("index.sled")).unwrap();
    fs::write(root.path().join("index.sled"), "not a database").unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(cache.lookup(&one.key).unwrap().unwrap().digest, one.digest);
    assert!(
        children(root.path())
            .iter()
            .any(|n| n.starts_with("index.sled.broken-"))
    );
    let report = cache.gc(&[one.key].into(), &HashSet::new(), false).unwrap();
    assert!(
        report
            .removed
            .iter()
            .any(|(what, _)| what.starts_with("index.sled.broken-")),
        "{report:?}"
    );
    assert!(
        !children(root.path())
            .iter()
            .any(|n| n.starts_with("index.sled.broken-"))
    );
    drop(cache);

    // Garbage inside sled's own files: whatever sled makes of it, the entry is still found.
    let index = root.path().join("index.sled");
    for name in children(&index) {
        let path = index.join(&name);
        if path.is_file() {
            let len = fs::metadata(&path).unwrap().len() as usize;
            fs::write(&path, vec![0xA5u8; len.max(64)]).unwrap();
        }
    }
    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(cache.lookup(&one.key).unwrap().unwrap().digest, one.digest);
    assert_eq!(cache.entries().unwrap().len(), 1);
}

#[test]
fn latest_entry_of_a_stage_and_its_manifest_diff() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    publish(&cache, 1);
    std::thread::sleep(Duration::from_millis(5));
    let newer = publish(&cache, 2);
    let latest = cache.latest_entry_for_stage("split").unwrap().unwrap();
    assert_eq!(latest.key, newer.key);
    assert!(cache.latest_entry_for_stage("eval").unwrap().is_none());
    let diff = latest.meta.key_manifest.diff(&manifest(3));
    assert_eq!(diff.len(), 1);
    assert_eq!(
        (
            diff[0].path.as_str(),
            diff[0].old.clone(),
            diff[0].new.clone()
        ),
        ("params.n", Some(json!(2)), Some(json!(3)))
    );
}

#[test]
fn a_stale_index_record_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let one = publish(&cache, 1);
    // Someone replaces the directory behind the index's back with a valid entry made elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = {
        let c = Cache::open_exclusive(elsewhere.path()).unwrap();
        let m = manifest(1);
        let staging = c.staging(&m.key()).unwrap();
        fs::write(staging.dir.join("changed.txt"), "another run's output").unwrap();
        c.publish(staging, meta(m)).unwrap()
    };
    fs::remove_dir_all(&one.dir).unwrap();
    copy_dir(&other.dir, &one.dir);
    let found = cache.lookup(&one.key).unwrap().unwrap();
    assert_eq!(found.digest, other.digest);
    assert_ne!(found.digest, one.digest);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn tampered_artifacts_are_quarantined_and_never_returned() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let flipped = publish(&cache, 1);
    let truncated = publish(&cache, 2);
    let bad_meta = publish(&cache, 3);
    let extra = publish(&cache, 4);
    let intact = publish(&cache, 5);

    // One byte changed, same size: only a re-hash can tell.
    let path = flipped.file("train.jsonl");
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    // A truncated file or broken metadata: lookup (a writer's) sees it and quarantines it.
    fs::write(truncated.file("train.jsonl"), "short").unwrap();
    assert!(cache.lookup(&truncated.key).unwrap().is_none());
    fs::write(bad_meta.dir.join(ENTRY_FILE), "{ not json").unwrap();
    assert!(cache.lookup(&bad_meta.key).unwrap().is_none());
    assert!(!truncated.dir.exists() && !bad_meta.dir.exists());
    fs::write(extra.dir.join("smuggled.bin"), "x").unwrap();
    fs::create_dir(root.path().join("artifacts/not-a-key")).unwrap();

    let report = cache.verify(false).unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!(report.ok, 1);
    let mut quarantined: Vec<Key> = report.quarantined.iter().map(|(k, _)| *k).collect();
    quarantined.sort();
    let mut expected = vec![flipped.key, extra.key];
    expected.sort();
    assert_eq!(quarantined, expected);
    expected.extend([truncated.key, bad_meta.key]);
    let reason = |k: Key| {
        report
            .quarantined
            .iter()
            .find(|(q, _)| *q == k)
            .unwrap()
            .1
            .clone()
    };
    assert!(
        reason(flipped.key).contains("content does not match"),
        "{}",
        reason(flipped.key)
    );
    assert!(
        reason(extra.key).contains("smuggled.bin"),
        "{}",
        reason(extra.key)
    );
    assert_eq!(report.quarantined_names.len(), 1);

    for key in &expected {
        assert!(cache.lookup(key).unwrap().is_none());
    }
    assert_eq!(
        cache.lookup(&intact.key).unwrap().unwrap().digest,
        intact.digest
    );
    assert_eq!(
        children(&root.path().join("artifacts")),
        [intact.key.to_string()]
    );
    // Quarantine keeps the evidence with a reason file.
    let q = children(&root.path().join("quarantine"));
    assert_eq!(
        q.iter().filter(|n| n.ends_with(".reason")).count(),
        5,
        "{q:?}"
    );

    // The stage can now run again and publish a fresh entry under the same key.
    let again = publish(&cache, 1);
    assert_eq!(
        cache.lookup(&flipped.key).unwrap().unwrap().digest,
        again.digest
    );
}

#[test]
fn verify_repair_drops_index_records_without_a_directory() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let gone = publish(&cache, 1);
    publish(&cache, 2);
    fs::remove_dir_all(&gone.dir).unwrap();
    assert!(cache.lookup(&gone.key).unwrap().is_none());
    let report = cache.verify(true).unwrap();
    assert_eq!(
        (report.checked, report.ok, report.dropped_index),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(report.quarantined.is_empty());
}

#[test]
fn stale_lock_of_a_dead_process_is_taken_over() {
    let root = tempfile::tempdir().unwrap();
    drop(Cache::open_exclusive(root.path()).unwrap());
    // No process has this pid (Linux pid_max is at most 2^22).
    fs::write(root.path().join("lock"), "999999999\n").unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let holder: u32 = fs::read_to_string(root.path().join("lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(holder, std::process::id());
    publish(&cache, 1);
}

/// The helper binary holding the cache at `root` locked until its stdin closes.
fn lock_holder(root: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_apitune-test-helper"))
        .arg("hold-lock")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn writers_share_the_cache_one_keeps_the_index_and_maintenance_waits_for_all() {
    let root = tempfile::tempdir().unwrap();
    let first = Cache::open(root.path()).unwrap();
    let second = Cache::open(root.path()).unwrap();
    assert!(first.holds_index() && !second.holds_index());
    // Each publishes; each sees the other's entry (the second from its metadata file).
    let a = publish(&first, 1);
    let b = publish(&second, 2);
    assert_eq!(second.lookup(&a.key).unwrap().unwrap().digest, a.digest);
    assert_eq!(first.lookup(&b.key).unwrap().unwrap().digest, b.digest);
    match Cache::open_exclusive(root.path()) {
        Err(e @ CacheError::Locked { pid: None, .. }) => {
            assert!(e.to_string().contains("other apitune runs"), "{e}");
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("maintenance was let in beside running writers"),
    }
    assert!(matches!(
        second.verify(false),
        Err(CacheError::NotExclusive { .. })
    ));
    // The index passes to the next writer when its holder closes.
    drop(first);
    let third = Cache::open(root.path()).unwrap();
    assert!(third.holds_index());
    drop((second, third));
    let alone = Cache::open_exclusive(root.path()).unwrap();
    let report = alone.verify(true).unwrap();
    assert_eq!((report.checked, report.ok), (2, 2), "{report:?}");
    assert!(common::staged_in_tmp(root.path()).is_empty());
}

#[test]
fn a_key_is_claimed_by_one_writer_and_the_other_waits_for_its_result() {
    let root = tempfile::tempdir().unwrap();
    let first = Cache::open(root.path()).unwrap();
    let second = Cache::open(root.path()).unwrap();
    let key = manifest(7).key();
    let claim = first.claim(&key, &|_| panic!("nobody held it")).unwrap();
    let waited = std::sync::Mutex::new(String::new());
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let _claim = second
                .claim(&key, &|holder| *waited.lock().unwrap() = holder.to_string())
                .unwrap();
            // What a scheduler does after waiting: look again, and find the holder's result.
            second.lookup(&key).unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "the second claim must wait");
        publish(&first, 7);
        drop(claim);
        let found = waiter.join().unwrap().expect("the holder published it");
        assert_eq!(found.key, key);
    });
    let holder = waited.into_inner().unwrap();
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
}

#[test]
fn live_lock_is_refused_with_the_holders_pid() {
    let root = tempfile::tempdir().unwrap();
    let mut holder = lock_holder(root.path());
    let mut stdout = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("HELPER-LOCKED") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "helper exited before locking"
        );
    }
    for open in [Cache::open, Cache::open_exclusive] {
        match open(root.path()) {
            Err(CacheError::Locked { pid, path }) => {
                assert_eq!(pid, Some(holder.id()));
                assert_eq!(path, root.path().join("lock"));
                let message = CacheError::Locked { pid, path }.to_string();
                assert!(
                    message.contains(&format!("process {}", holder.id())),
                    "{message}"
                );
            }
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a writer was let in beside the exclusive one"),
        }
    }
    // Readers are never blocked by the writer.
    assert!(
        Cache::open_read_only(root.path())
            .unwrap()
            .entries()
            .unwrap()
            .is_empty()
    );

    drop(holder.stdin.take()); // the holder finishes
    assert!(holder.wait().unwrap().success());
    Cache::open_exclusive(root.path()).unwrap();
}

#[test]
fn gc_dry_run_reports_exactly_what_gc_removes() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let keep_a = publish(&cache, 1);
    let keep_b = publish(&cache, 2);
    let drop_a = publish(&cache, 3);
    let drop_b = publish(&cache, 4);
    let resumable = cache.work_dir(&manifest(10).key()).unwrap();
    fs::write(resumable.join("ckpt"), vec![0u8; 1000]).unwrap();
    let abandoned = cache.work_dir(&manifest(11).key()).unwrap();
    fs::write(abandoned.join("ckpt"), vec![0u8; 2000]).unwrap();
    fs::create_dir(root.path().join("tmp/leftover.1.0")).unwrap();
    fs::write(root.path().join("tmp/leftover.1.0/f"), vec![0u8; 300]).unwrap();
    fs::write(
        root.path().join("file-hashes.json.tmp-99999"),
        vec![0u8; 50],
    )
    .unwrap(); // a writer died closing
    let live = cache.staging(&manifest(12).key()).unwrap(); // this process's own, in use
    fs::write(live.dir.join("out"), "x").unwrap();

    let keep: HashSet<Key> = [keep_a.key, keep_b.key, manifest(10).key()].into();
    let dry = cache.gc(&keep, &HashSet::new(), true).unwrap();
    assert_eq!(
        cache.entries().unwrap().len(),
        4,
        "a dry run deletes nothing"
    );
    assert_eq!(dry.kept, 2);
    let entry_size = |e: &Entry| e.bytes + fs::metadata(e.dir.join(ENTRY_FILE)).unwrap().len();
    let mut expected = vec![
        (
            format!("artifacts/{} (split)", drop_a.key),
            entry_size(&drop_a),
        ),
        (
            format!("artifacts/{} (split)", drop_b.key),
            entry_size(&drop_b),
        ),
        (format!("work/{}", manifest(11).key()), 2000),
        ("tmp/leftover.1.0".to_string(), 300),
        ("file-hashes.json.tmp-99999".to_string(), 50),
    ];
    expected.sort();
    let mut reported = dry.removed.clone();
    reported.sort();
    assert_eq!(reported, expected);
    assert_eq!(dry.bytes, expected.iter().map(|(_, b)| b).sum::<u64>());

    // A read-only handle may dry-run too, and sees the same (minus nothing: no live staging of its own).
    let reader_dry = Cache::open_read_only(root.path())
        .unwrap()
        .gc(&keep, &HashSet::new(), true)
        .unwrap();
    assert_eq!(
        reader_dry.bytes,
        dry.bytes + 1,
        "the reader also counts our live staging dir"
    );

    let real = cache.gc(&keep, &HashSet::new(), false).unwrap();
    assert_eq!(real.removed, dry.removed);
    assert_eq!(real.bytes, dry.bytes);
    let left: Vec<Key> = cache
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&keep_a.key) && left.contains(&keep_b.key));
    assert!(resumable.join("ckpt").exists());
    assert!(!abandoned.exists());
    assert!(live.dir.join("out").exists());
    assert!(cache.lookup(&drop_a.key).unwrap().is_none());
    let again = cache.gc(&keep, &HashSet::new(), true).unwrap();
    assert!(again.removed.is_empty() && again.bytes == 0, "{again:?}");
}

#[test]
fn read_only_cache_never_writes() {
    let missing = tempfile::tempdir().unwrap().path().join("nowhere");
    let reader = Cache::open_read_only(&missing).unwrap();
    assert!(reader.entries().unwrap().is_empty());
    assert!(reader.lookup(&manifest(1).key()).unwrap().is_none());
    assert!(matches!(
        reader.staging(&manifest(1).key()),
        Err(CacheError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.work_dir(&manifest(1).key()),
        Err(CacheError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.verify(false),
        Err(CacheError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.gc(&HashSet::new(), &HashSet::new(), false),
        Err(CacheError::ReadOnly { .. })
    ));
    assert!(!missing.exists());
}

fn set_mtime(path: &Path, ago: Duration) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn file_hash_stat_cache_hits_until_the_file_changes() {
    let root = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let weights = inputs.path().join("model.safetensors");
    fs::write(&weights, vec![1u8; 100_000]).unwrap();
    set_mtime(&weights, Duration::from_secs(100));

    let cache = Cache::open_exclusive(root.path()).unwrap();
    let first = cache.hash_file(&weights).unwrap();
    assert_eq!(first, blake3::hash(&vec![1u8; 100_000]));
    assert_eq!(cache.hash_file(&weights).unwrap(), first);
    let stats = cache.hash_stats();
    assert_eq!((stats.files_hashed, stats.stat_cache_hits), (1, 1));

    // Same size, different bytes, an older-looking mtime: still noticed.
    let mut changed = vec![1u8; 100_000];
    changed[50_000] = 2;
    fs::write(&weights, &changed).unwrap();
    set_mtime(&weights, Duration::from_secs(50));
    let second = cache.hash_file(&weights).unwrap();
    assert_eq!(second, blake3::hash(&changed));
    assert_eq!(cache.hash_file(&weights).unwrap(), second);
    assert_eq!(cache.hash_stats().files_hashed, 2);

    // Rewritten and its mtime put back exactly: the ctime still gives it away.
    let mtime = fs::metadata(&weights).unwrap().modified().unwrap();
    changed[50_000] = 3;
    fs::write(&weights, &changed).unwrap();
    fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(cache.hash_file(&weights).unwrap(), blake3::hash(&changed));
    assert_eq!(cache.hash_stats().files_hashed, 3);

    // The stat cache persists across opens.
    drop(cache);
    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(cache.hash_file(&weights).unwrap(), blake3::hash(&changed));
    assert_eq!(
        cache.hash_stats(),
        apitune::cache::HashStats {
            stat_cache_hits: 1,
            files_hashed: 0
        }
    );

    // A file written just now is not trusted to the stat cache (its mtime tick may not be over).
    let fresh = inputs.path().join("fresh.bin");
    fs::write(&fresh, "new").unwrap();
    cache.hash_file(&fresh).unwrap();
    cache.hash_file(&fresh).unwrap();
    assert_eq!(cache.hash_stats().files_hashed, 2);

    // Read-only handles use what the last writer left when it closed, and nothing stale.
    drop(cache);
    let reader = Cache::open_read_only(root.path()).unwrap();
    assert_eq!(reader.hash_file(&weights).unwrap(), blake3::hash(&changed));
    assert_eq!(
        reader.hash_stats(),
        apitune::cache::HashStats {
            stat_cache_hits: 1,
            files_hashed: 0
        }
    );
    changed[0] = 9;
    fs::write(&weights, &changed).unwrap();
    set_mtime(&weights, Duration::from_secs(100));
    let reader = Cache::open_read_only(root.path()).unwrap();
    assert_eq!(reader.hash_file(&weights).unwrap(), blake3::hash(&changed));
    assert_eq!(
        reader.hash_stats().files_hashed,
        1,
        "a changed file is re-read"
    );
}

#[test]
fn hash_path_of_a_directory_matches_the_artifact_digest() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let entry = publish(&cache, 7);
    let model = tempfile::tempdir().unwrap();
    copy_dir(&entry.dir, model.path());
    fs::remove_file(model.path().join(ENTRY_FILE)).unwrap();
    assert_eq!(
        apitune::cache::Digest::from(cache.hash_path(model.path()).unwrap()),
        entry.digest
    );
    let file = model.path().join("train.jsonl");
    assert_eq!(
        cache.hash_path(&file).unwrap(),
        blake3::hash(&fs::read(&file).unwrap())
    );
    let err = cache
        .hash_path(&model.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent"), "{err}");
}

// --- Ownership of the cache directory, damage detection before use, memos ---

#[test]
fn only_empty_or_marked_directories_are_opened() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        Cache::open_exclusive(root.path()),
        Err(CacheError::Foreign { .. })
    ));
    assert!(matches!(
        Cache::open_read_only(root.path()),
        Err(CacheError::Foreign { .. })
    ));
    assert_eq!(
        children(root.path()),
        ["notes.txt"],
        "nothing was created or removed"
    );

    let fresh = tempfile::tempdir().unwrap();
    drop(Cache::open_exclusive(fresh.path()).unwrap());
    let marker = fs::read_to_string(fresh.path().join(apitune::cache::CACHE_MARKER)).unwrap();
    assert_eq!(
        marker.trim(),
        format!("apitune cache format {}", apitune::cache::CACHE_FORMAT)
    );
    publish(&Cache::open_exclusive(fresh.path()).unwrap(), 1);

    fs::write(
        fresh.path().join(apitune::cache::CACHE_MARKER),
        "apitune cache format 999\n",
    )
    .unwrap();
    match Cache::open_exclusive(fresh.path()) {
        Err(e @ CacheError::Format { .. }) => assert!(e.to_string().contains("999"), "{e}"),
        other => panic!("expected a format error, got {:?}", other.err()),
    }
}

#[test]
fn a_cache_from_before_the_marker_is_adopted() {
    let root = tempfile::tempdir().unwrap();
    publish(&Cache::open_exclusive(root.path()).unwrap(), 1);
    fs::remove_file(root.path().join(apitune::cache::CACHE_MARKER)).unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    assert_eq!(cache.entries().unwrap().len(), 1);
    assert!(root.path().join(apitune::cache::CACHE_MARKER).exists());
}

#[cfg(unix)]
#[test]
fn a_symlinked_subdirectory_is_refused_before_anything_is_deleted() {
    for sub in ["tmp", "work", "quarantine", "memo", "artifacts"] {
        let root = tempfile::tempdir().unwrap();
        drop(Cache::open_exclusive(root.path()).unwrap());
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("precious"), "x").unwrap();
        fs::remove_dir_all(root.path().join(sub)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join(sub)).unwrap();
        assert!(
            matches!(
                Cache::open_exclusive(root.path()),
                Err(CacheError::LinkedSubdirectory { .. })
            ),
            "{sub}"
        );
        assert_eq!(children(elsewhere.path()), ["precious"], "{sub}");
    }
}

#[test]
fn a_file_changed_after_publication_is_never_a_hit() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let entry = publish(&cache, 1);
    let file = entry.file("train.jsonl");
    let mut bytes = fs::read(&file).unwrap();
    bytes[3] ^= 0x20; // same size
    fs::write(&file, &bytes).unwrap();

    let reader = Cache::open_read_only(root.path()).unwrap();
    match reader.find(&entry.key).unwrap() {
        apitune::cache::Lookup::Damaged(why) => assert!(why.contains("train.jsonl"), "{why}"),
        other => panic!("expected damage, got {other:?}"),
    }
    assert!(entry.dir.exists(), "a reader reports, never moves");
    assert!(cache.lookup(&entry.key).unwrap().is_none());
    assert!(!entry.dir.exists(), "the writer quarantined it");
    assert_eq!(
        children(&root.path().join("quarantine")).len(),
        2,
        "entry and its .reason"
    );
}

#[test]
fn consuming_an_entry_rehashes_it_even_when_its_stat_looks_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let entry = publish(&cache, 2);
    assert!(cache.verify_for_use(&entry).unwrap().is_ok());
    // Bit rot under an unchanged stat cannot be staged from user space; a changed file whose
    // stat is then ignored is what verify_for_use must still catch.
    let file = entry.file("sub/stats.json");
    let mut bytes = fs::read(&file).unwrap();
    bytes[1] ^= 0x01;
    fs::write(&file, &bytes).unwrap();
    let why = cache.verify_for_use(&entry).unwrap().unwrap_err();
    assert!(
        why.contains("sub/stats.json") && why.contains("quarantine"),
        "{why}"
    );
    assert!(cache.lookup(&entry.key).unwrap().is_none());
}

#[test]
fn verify_cuts_a_damaged_memo_back_to_its_intact_prefix() {
    use apitune::cache::memo::{MemoWriter, memo_dir, read_memo};
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::open_exclusive(root.path()).unwrap();
    let dir = memo_dir(root.path(), &json!({"what": "test"})).unwrap();
    let log = dir.join("level1.jsonl");
    let mut writer = MemoWriter::rewrite(&log, &[json!({"i": 0}), json!({"i": 1})]).unwrap();
    writer.append(&json!({"i": 2})).unwrap();
    writer.sync().unwrap();
    let mut bytes = fs::read(&log).unwrap();
    let at = bytes.len() - 10;
    bytes[at] = 0xff; // inside the checksum of the last line, and not UTF-8
    fs::write(&log, &bytes).unwrap();

    let report = cache.verify(false).unwrap();
    assert_eq!(report.memos_damaged.len(), 1, "{:?}", report.memos_damaged);
    assert!(
        report.memos_damaged[0].1.contains("line 3"),
        "{:?}",
        report.memos_damaged
    );
    let read = read_memo::<serde_json::Value>(&log).unwrap();
    assert_eq!(read.items.len(), 2);
    assert!(read.damaged.is_none(), "repaired");
    assert!(cache.verify(false).unwrap().memos_damaged.is_empty());
}
