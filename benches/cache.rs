//! Cache throughput: input hashing (cold vs stat-cached), publish latency (with fsyncs), lookup
//! and listing with and without the index. `cargo bench --bench cache` (or, without a release
//! build, `cargo test --bench cache`). Sizes via APITUNE_BENCH_HASH_MB (default 256) and
//! APITUNE_BENCH_ENTRIES (default 200).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use apitune::cache::{Cache, EntryMeta, KeyManifest};
use serde_json::json;

#[path = "support/host.rs"]
mod host;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per(total: Duration, n: usize) -> String {
    format!("{:.3} ms", total.as_secs_f64() * 1e3 / n as f64)
}

fn tree_bytes(path: &Path) -> u64 {
    let meta = fs::symlink_metadata(path).unwrap();
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .unwrap()
        .map(|e| tree_bytes(&e.unwrap().path()))
        .sum()
}

fn main() {
    println!("{}", host::stamp());
    let hash_mb = env_usize("APITUNE_BENCH_HASH_MB", 256);
    let n_entries = env_usize("APITUNE_BENCH_ENTRIES", 200);
    let root = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let cache = Cache::open(root.path()).unwrap();
    bench_hash(&cache, inputs.path(), hash_mb);
    let (manifests, payload_bytes) = bench_publish(&cache, n_entries);
    // The read-only reader stays open through the rest, as a concurrent reader would.
    let _reader = bench_lookups(&cache, root.path(), &manifests);
    bench_verify_and_rebuild(cache, root.path(), (n_entries, payload_bytes));
}

/// Hashing an input file: the first time, and then from the stat cache.
fn bench_hash(cache: &Cache, inputs: &Path, hash_mb: usize) {
    let weights = inputs.join("model.safetensors");
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut data = Vec::with_capacity(hash_mb << 20);
    for _ in 0..hash_mb {
        data.extend_from_slice(&chunk);
    }
    fs::write(&weights, &data).unwrap();
    drop(data);
    fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    let t = Instant::now();
    cache.hash_file(&weights).unwrap();
    let cold = t.elapsed();
    let t = Instant::now();
    for _ in 0..1000 {
        cache.hash_file(&weights).unwrap();
    }
    let warm = t.elapsed();
    println!(
        "hash_file {hash_mb} MiB: first {:.1} ms ({:.2} GiB/s, page-cached), stat-cache hit {}",
        cold.as_secs_f64() * 1e3,
        hash_mb as f64 / 1024.0 / cold.as_secs_f64(),
        per(warm, 1000)
    );
}

/// Publishing `n_entries` entries of 4 × 256 KiB; returns their key manifests and payload size.
fn bench_publish(cache: &Cache, n_entries: usize) -> (Vec<KeyManifest>, usize) {
    let manifests: Vec<KeyManifest> = (0..n_entries)
        .map(|i| {
            KeyManifest::new()
                .with("kind", "bench")
                .with("version", 1)
                .with("i", i)
        })
        .collect();
    let payload = vec![42u8; 256 << 10];
    let t = Instant::now();
    for (i, m) in manifests.iter().enumerate() {
        let staging = cache.staging(&m.key()).unwrap();
        for f in 0..4 {
            fs::write(staging.dir.join(format!("part{f}.bin")), &payload).unwrap();
        }
        let meta = EntryMeta {
            stage: format!("bench[i={i}]"),
            kind: "bench".into(),
            key_manifest: m.clone(),
            started_unix_ms: 0,
            duration_s: 0.0,
            summary: json!({}),
        };
        cache.publish(staging, meta).unwrap();
    }
    println!(
        "publish (4 files x 256 KiB, fsynced): {} per entry over {n_entries}",
        per(t.elapsed(), n_entries)
    );
    (manifests, payload.len())
}

/// Lookups by a writer and by a read-only reader (returned for the next phase), and listing.
fn bench_lookups(cache: &Cache, root: &Path, manifests: &[KeyManifest]) -> Cache {
    let n_entries = manifests.len();
    let keys: Vec<_> = manifests.iter().map(KeyManifest::key).collect();
    let t = Instant::now();
    for key in &keys {
        assert!(cache.lookup(key).unwrap().is_some());
    }
    println!(
        "lookup, writer (indexed): {} per key",
        per(t.elapsed(), n_entries)
    );
    let reader = Cache::open_read_only(root).unwrap();
    let t = Instant::now();
    for key in &keys {
        assert!(reader.lookup(key).unwrap().is_some());
    }
    println!(
        "lookup, read-only (metadata file): {} per key",
        per(t.elapsed(), n_entries)
    );

    let t = Instant::now();
    assert_eq!(cache.entries().unwrap().len(), n_entries);
    println!(
        "entries(), writer: {:.1} ms for {n_entries}",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    assert_eq!(reader.entries().unwrap().len(), n_entries);
    println!(
        "entries(), read-only: {:.1} ms for {n_entries}",
        t.elapsed().as_secs_f64() * 1e3
    );
    reader
}

/// Verifying every entry, the index's size, and rebuilding a deleted index.
fn bench_verify_and_rebuild(cache: Cache, root: &Path, (n_entries, payload_bytes): (usize, usize)) {
    let t = Instant::now();
    let report = cache.verify(false).unwrap();
    assert_eq!(report.ok, n_entries);
    let mib = (n_entries * 4 * payload_bytes) as f64 / (1 << 20) as f64;
    println!(
        "verify: {:.1} ms for {n_entries} entries ({mib:.0} MiB)",
        t.elapsed().as_secs_f64() * 1e3
    );

    drop(cache);
    println!(
        "index.sled on disk: {:.1} MiB for {n_entries} entries + 1 stat-cache record",
        tree_bytes(&root.join("index.sled")) as f64 / (1 << 20) as f64
    );
    fs::remove_dir_all(root.join("index.sled")).unwrap();
    let t = Instant::now();
    let cache = Cache::open(root).unwrap();
    assert_eq!(cache.entries().unwrap().len(), n_entries);
    println!(
        "open + rebuild a deleted index: {:.1} ms for {n_entries} entries",
        t.elapsed().as_secs_f64() * 1e3
    );
}
