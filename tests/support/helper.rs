//! Helper processes for the integration tests: a cache writer to kill with SIGKILL, and a lock
//! holder. A separate binary so that no test passes by doing nothing.
//!
//!     apitune-test-helper publish-until-killed CACHE SEED
//!     apitune-test-helper hold-lock CACHE        (until stdin closes)

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::Path;

use apitune::cache::memo::{MemoWriter, memo_dir, read_memo};
use apitune::cache::{Cache, EntryMeta, Key, KeyManifest};
use serde_json::json;

mod rng;

use rng::Rng;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args
        .iter()
        .map(|a| a.to_str().unwrap_or_default())
        .collect::<Vec<_>>()[..]
    {
        ["publish-until-killed", _, seed] => publish_until_killed(&args[1], seed.parse().unwrap()),
        ["hold-lock", _] => hold_lock(&args[1]),
        _ => {
            eprintln!(
                "usage: apitune-test-helper publish-until-killed CACHE SEED | hold-lock CACHE"
            );
            std::process::exit(2);
        }
    }
}

/// Opens the cache exclusively (as maintenance does) and holds it until stdin closes.
fn hold_lock(root: &OsStr) {
    let _cache = Cache::open_exclusive(Path::new(root)).unwrap();
    println!("HELPER-LOCKED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// The writer process that `cache_crash::kill_9_never_leaves_a_corrupt_entry` kills.
/// Publishes entries forever, with checkpoints in work dirs, periodic gc and verify.
fn publish_until_killed(root: &OsStr, seed: u64) {
    let cache = Cache::open_exclusive(Path::new(&root)).unwrap();
    println!("\nCHILD-READY");
    let mut rng = Rng(seed | 1);
    let mut mine: Vec<Key> = Vec::new();
    for i in 0u64.. {
        let manifest = KeyManifest::new()
            .with("kind", "crash-test")
            .with("seed", seed)
            .with("i", i);
        let key = manifest.key();
        let work = cache.work_dir(&key).unwrap();
        fs::write(
            work.join("checkpoint.bin"),
            vec![7u8; rng.below(200_000) as usize],
        )
        .unwrap();

        let staging = cache.staging(&key).unwrap();
        for f in 0..1 + rng.below(4) {
            let dir = if f % 2 == 0 {
                staging.dir.clone()
            } else {
                staging.dir.join(format!("d{f}"))
            };
            fs::create_dir_all(&dir).unwrap();
            let len = rng.below(600_000) as usize;
            let fill = (rng.next() & 0xff) as u8;
            fs::write(dir.join(format!("f{f}.bin")), vec![fill; len]).unwrap();
        }
        let meta = EntryMeta {
            stage: format!("crash[i={i}]"),
            kind: "crash-test".into(),
            key_manifest: manifest,
            started_unix_ms: 0,
            duration_s: 0.0,
            summary: json!({"i": i}),
        };
        cache.publish(staging, meta).unwrap();
        println!("PUBLISHED {key}");
        mine.push(key);

        // A memo log grows line by line and is now and then rewritten from its intact prefix,
        // as eval does; a kill at any point must leave only intact lines (and perhaps a cut one).
        let memo = memo_dir(Path::new(&root), &json!({"seed": seed % 3}))
            .unwrap()
            .join("log.jsonl");
        let mut items = read_memo::<serde_json::Value>(&memo).unwrap().items;
        items.push(json!({"i": i, "pad": "x".repeat(rng.below(20_000) as usize)}));
        let mut writer = MemoWriter::rewrite(&memo, &items[..items.len() - 1]).unwrap();
        writer.append(items.last().unwrap()).unwrap();

        if i % 7 == 6 {
            let keep: HashSet<Key> = mine.iter().rev().take(4).copied().collect();
            for entry in cache.entries().unwrap() {
                if !keep.contains(&entry.key) {
                    println!("GC-ELIGIBLE {}", entry.key);
                }
            }
            cache.gc(&keep, &HashSet::new(), false).unwrap();
        }
        if i % 11 == 10 {
            let report = cache.verify(true).unwrap();
            assert!(report.quarantined.is_empty(), "{report:?}");
        }
    }
}
