//! The normalize stage: normalisation, de-duplication, held-out levels without leakage, seeded
//! and nested training order, endpoints artifact; and the prompt template.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use apitune::data::{
    ApiRecord, HeldoutScope, HeldoutSpec, NormalizeParams, read_endpoints, read_records,
    run_normalize, take_samples,
};
use serde_json::{Value, json};

fn record(api: usize, endpoint: usize, lang: &str) -> ApiRecord {
    ApiRecord {
        api_name: format!("Api{api}"),
        api_description: format!("API number {api}."),
        lang: lang.to_string(),
        path: format!("/things{endpoint}/{{id}}"),
        method: Some(
            if endpoint.is_multiple_of(2) {
                "GET"
            } else {
                "POST"
            }
            .to_string(),
        ),
        functionality: format!("Thing {endpoint}"),
        description: format!("Does thing {endpoint}."),
        domain: vec!["Tests".into()],
        instruction: format!("Do thing {endpoint} with API {api}."),
        instruction_test: format!("How would I do thing {endpoint} on API {api}?"),
        code: format!("call --api {api} --endpoint {endpoint} --lang {lang}"),
        api_arguments: json!({}),
        unique_id: format!("a{api}_e{endpoint}_{lang}"),
        host: Some(format!("api{api}.test")),
        base_url: None,
        spec_id: None,
    }
}

const LANGS: [&str; 3] = ["curl", "python", "go"];

/// 12 APIs x 6 endpoints x 3 languages, plus messy copies that normalisation must catch.
fn write_corpus(dir: &Path) -> usize {
    let mut lines = Vec::new();
    for api in 0..12 {
        for endpoint in 0..6 {
            for lang in LANGS {
                lines.push(serde_json::to_string(&record(api, endpoint, lang)).unwrap());
            }
        }
    }
    let clean = lines.len();
    // A duplicate after normalisation: CRLF, indentation, trailing spaces, label case.
    let mut messy = record(0, 0, " cURL ");
    messy.code = format!("    {}   \r\n", record(0, 0, "curl").code);
    messy.instruction = format!("  {}\n", messy.instruction);
    messy.unique_id = "messy".into();
    lines.push(serde_json::to_string(&messy).unwrap());
    let mut empty = record(1, 1, "curl");
    empty.code = " \n\t\n".into();
    lines.push(serde_json::to_string(&empty).unwrap());
    std::fs::write(dir.join("records.jsonl"), lines.join("\n") + "\n").unwrap();
    clean
}

fn params(level: usize) -> NormalizeParams {
    NormalizeParams {
        heldout: HeldoutSpec {
            level1: level,
            level2: level,
            level3: level,
            per: HeldoutScope::Lang,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn load(path: &Path) -> Vec<ApiRecord> {
    read_records(path).collect::<Result<_, _>>().unwrap()
}

struct Split {
    summary: Value,
    train: Vec<ApiRecord>,
    levels: [Vec<ApiRecord>; 3],
    dir: tempfile::TempDir,
}

fn split(params: &NormalizeParams, seed: u64) -> Split {
    split_corpus(params, seed, write_corpus)
}

fn split_corpus(params: &NormalizeParams, seed: u64, corpus: fn(&Path) -> usize) -> Split {
    let input = tempfile::tempdir().unwrap();
    corpus(input.path());
    let dir = tempfile::tempdir().unwrap();
    let summary = run_normalize(params, seed, input.path(), dir.path()).unwrap();
    let train = load(&dir.path().join("train.jsonl"));
    let levels = ["level1", "level2", "level3"]
        .map(|level| load(&dir.path().join(format!("{level}.jsonl"))));
    Split {
        summary,
        train,
        levels,
        dir,
    }
}

fn endpoint_key(record: &ApiRecord) -> (String, Option<String>, String) {
    (
        record.api_name.clone(),
        record.method.clone(),
        record.path.clone(),
    )
}

/// Level 3's APIs and level 2's endpoints never occur in training, level 1 asks for known calls
/// in new words, and the levels are disjoint.
fn assert_leak_free(result: &Split) {
    let [level1, level2, level3] = &result.levels;
    let train_apis: BTreeSet<&str> = result.train.iter().map(|r| r.api_name.as_str()).collect();
    let train_endpoints: HashSet<_> = result.train.iter().map(endpoint_key).collect();
    let train_pairs: HashSet<(&str, &str)> = result
        .train
        .iter()
        .map(|r| (r.instruction.as_str(), r.code.as_str()))
        .collect();
    // Level 3: API never seen.
    for r in level3 {
        assert!(!train_apis.contains(r.api_name.as_str()), "{r:?}");
    }
    // Level 2: API seen, endpoint not.
    for r in level2 {
        assert!(train_apis.contains(r.api_name.as_str()), "{r:?}");
        assert!(!train_endpoints.contains(&endpoint_key(r)), "{r:?}");
    }
    // Level 1: API and endpoint seen, and the query is a phrasing training never pairs with
    // this code.
    for r in level1 {
        assert!(train_endpoints.contains(&endpoint_key(r)), "{r:?}");
        assert!(
            r.instruction.starts_with("How would I"),
            "level files prompt with instruction_test: {r:?}"
        );
        assert!(
            !train_pairs.contains(&(r.instruction.as_str(), r.code.as_str())),
            "{r:?}"
        );
    }
    // Held-out levels are disjoint.
    let ids: Vec<BTreeSet<&str>> = result
        .levels
        .iter()
        .map(|l| l.iter().map(|r| r.unique_id.as_str()).collect())
        .collect();
    assert!(
        ids[0].is_disjoint(&ids[1]) && ids[1].is_disjoint(&ids[2]) && ids[0].is_disjoint(&ids[2])
    );
}

#[test]
fn normalises_deduplicates_and_drops_empty_code() {
    let result = split(&params(2), 7);
    assert_eq!(result.summary["input_records"], 12 * 6 * 3 + 2);
    assert_eq!(
        result.summary["dropped"],
        json!({"duplicate": 1, "empty_code": 1}),
        "{:#}",
        result.summary
    );
    assert_eq!(result.summary["kept"], 12 * 6 * 3);
    let all: Vec<&ApiRecord> = result
        .train
        .iter()
        .chain(result.levels.iter().flatten())
        .collect();
    assert!(all.iter().all(|r| LANGS.contains(&r.lang.as_str())));
    assert!(!all.iter().any(|r| r.unique_id == "messy"));
}

#[test]
fn levels_do_not_leak_into_training() {
    for per in [HeldoutScope::Lang, HeldoutScope::Overall] {
        let mut params = params(4);
        params.heldout.per = per;
        let result = split(&params, 11);
        let expected = match per {
            HeldoutScope::Lang => 4 * LANGS.len(),
            HeldoutScope::Overall => 4,
        };
        for (level, records) in result.levels.iter().enumerate() {
            assert_eq!(
                records.len(),
                expected,
                "level{} {per:?}: {:#}",
                level + 1,
                result.summary
            );
        }
        assert_eq!(result.summary["shortfall"], json!({}));
        assert_leak_free(&result);
    }
}

/// One giant API (40 endpoints) and 30 small ones (2 endpoints each), in every language.
fn write_skewed_corpus(dir: &Path) -> usize {
    let mut lines = Vec::new();
    for api in 0..31 {
        let endpoints = if api == 0 { 40 } else { 2 };
        for endpoint in 0..endpoints {
            for lang in LANGS {
                lines.push(serde_json::to_string(&record(api, endpoint, lang)).unwrap());
            }
        }
    }
    std::fs::write(dir.join("records.jsonl"), lines.join("\n") + "\n").unwrap();
    lines.len()
}

/// Per level, the largest number of records one API gives one language.
fn most_per_api_and_lang(result: &Split) -> [usize; 3] {
    result.levels.each_ref().map(|records| {
        let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
        for r in records {
            *counts
                .entry((r.api_name.as_str(), r.lang.as_str()))
                .or_default() += 1;
        }
        counts.into_values().max().unwrap_or(0)
    })
}

#[test]
fn an_api_cap_spreads_every_level_over_many_apis_without_leaking() {
    // Uncapped, the giant API fills far more than a fifth of some level.
    let uncapped = split_corpus(&params(10), 5, write_skewed_corpus);
    assert!(most_per_api_and_lang(&uncapped).iter().any(|&n| n > 2));

    let mut capped = params(10);
    capped.heldout.max_api_percent = 20; // at most 2 of a language's 10
    capped.heldout.level3_apis = 8;
    let result = split_corpus(&capped, 5, write_skewed_corpus);
    assert_leak_free(&result);
    assert_eq!(
        result.summary["shortfall"],
        json!({}),
        "{:#}",
        result.summary
    );
    let most = most_per_api_and_lang(&result);
    assert!(most.iter().all(|&n| n <= 2), "{most:?}");
    for records in &result.levels {
        assert_eq!(records.len(), 10 * LANGS.len());
    }
    let level3_apis: BTreeSet<&str> = result.levels[2]
        .iter()
        .map(|r| r.api_name.as_str())
        .collect();
    assert!(level3_apis.len() >= 8, "{level3_apis:?}");
    assert_eq!(
        result.summary["splits"]["level3"]["apis"],
        level3_apis.len()
    );
    // Deterministic per seed.
    let again = split_corpus(&capped, 5, write_skewed_corpus);
    assert_eq!(again.levels, result.levels);
}

#[test]
fn level1_can_leave_training_while_its_endpoint_stays() {
    let mut params = params(3);
    params.level1_in_train = false;
    let result = split(&params, 3);
    let train_ids: HashSet<&str> = result.train.iter().map(|r| r.unique_id.as_str()).collect();
    let train_endpoints: HashSet<_> = result.train.iter().map(endpoint_key).collect();
    assert_eq!(result.levels[0].len(), 9);
    for r in &result.levels[0] {
        assert!(!train_ids.contains(r.unique_id.as_str()));
        assert!(train_endpoints.contains(&endpoint_key(r)));
    }
}

#[test]
fn splits_are_deterministic_per_seed_and_differ_across_seeds() {
    let ids = |s: &Split| -> Vec<Vec<String>> {
        std::iter::once(&s.train)
            .chain(s.levels.iter())
            .map(|l| l.iter().map(|r| r.unique_id.clone()).collect())
            .collect()
    };
    let a = split(&params(3), 5);
    let b = split(&params(3), 5);
    let c = split(&params(3), 6);
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.summary, b.summary);
    assert_ne!(ids(&a), ids(&c));
    for name in [
        "train.jsonl",
        "level1.jsonl",
        "level2.jsonl",
        "level3.jsonl",
        "endpoints.jsonl",
    ] {
        assert_eq!(
            std::fs::read(a.dir.path().join(name)).unwrap(),
            std::fs::read(b.dir.path().join(name)).unwrap(),
            "{name} differs between runs"
        );
    }
}

#[test]
fn sample_sets_are_nested_prefixes() {
    let full = split(&params(2), 9);
    let train_path = full.dir.path().join("train.jsonl");
    let small = take_samples(&train_path, 10).unwrap();
    let large = take_samples(&train_path, 40).unwrap();
    assert_eq!(&large[..10], &small[..]);
    // `samples` in the params writes the same prefix.
    let capped = split(
        &NormalizeParams {
            samples: Some(40),
            ..params(2)
        },
        9,
    );
    assert_eq!(capped.train, large);
    assert_eq!(capped.summary["splits"]["train"]["pool"], full.train.len());
    let err = take_samples(&train_path, 100_000).unwrap_err().to_string();
    assert!(
        err.contains("100000") && err.contains("train.jsonl"),
        "{err}"
    );
}

#[test]
fn shortfall_is_reported_not_hidden() {
    let result = split(&params(1000), 1);
    assert!(
        result.summary["shortfall"]["level3"]["curl"]
            .as_u64()
            .unwrap()
            > 0,
        "{:#}",
        result.summary
    );
    // At most half of the APIs are held out, so training keeps data.
    assert_eq!(result.summary["heldout_apis"], 6);
    assert!(!result.train.is_empty());
}

#[test]
fn endpoints_artifact_lists_every_api_endpoint() {
    let result = split(&params(2), 7);
    let catalogue = read_endpoints(&result.dir.path().join("endpoints.jsonl")).unwrap();
    assert_eq!(catalogue.len(), 12);
    let api0 = &catalogue[0];
    assert_eq!(api0.api_name, "Api0");
    assert_eq!(api0.hosts, ["api0.test"]);
    assert_eq!(api0.endpoints.len(), 6);
    assert_eq!(api0.endpoints[0].method.as_deref(), Some("GET"));
    assert_eq!(api0.endpoints[0].path, "/things0/{id}");
}

#[test]
fn normalize_params_parse_with_defaults() {
    let parsed: NormalizeParams =
        toml::from_str("heldout = { level1 = 200, level2 = 100, level3 = 50 }").unwrap();
    assert_eq!(
        (
            parsed.heldout.level1,
            parsed.heldout.level3,
            parsed.heldout.per
        ),
        (200, 50, HeldoutScope::Lang)
    );
    assert!(parsed.dedup && parsed.level1_in_train && parsed.samples.is_none());
    assert!(toml::from_str::<NormalizeParams>("heldout = { level4 = 1 }").is_err());
    assert!(toml::from_str::<NormalizeParams>("sample = 3").is_err());
}

#[test]
fn prompt_matches_the_study_template() {
    let mut r = record(3, 4, "python");
    r.api_arguments = json!({"city": "Lisboa", "days": 3});
    let expected = "You are an API client code generator. You MUST output ONLY valid python code. No comments. No explanations. No markdown. Only raw code.\n\n### USER REQUEST:\nDo thing 4 with API 3.\n\n### ENDPOINT PATH:\n/things4/{id}\n\n### DESCRIPTION:\nDoes thing 4.\n\n### PARAMETERS:\n{\"city\": \"Lisboa\", \"days\": 3}\n\n### OUTPUT:\n";
    assert_eq!(apitune::data::prompt(&r, "python"), expected);
}

/// Normalize sorts what it keeps of each record on disk with a fixed memory budget per sort
/// (`APITUNE_SPILL_MIB`): with a 1 MiB budget, ten times the records (and ten times the APIs and
/// endpoints) leave its peak memory within 1.5x, and the split files are byte-identical to those
/// of a run whose sorts fit in memory. Peaks are the `apitune` process's own `VmHWM` (Linux), as
/// `run --format json` reports it. Every input is larger than the 8 MiB up to which artifacts
/// are memory-mapped for hashing, so that step is the same in all.
#[test]
fn normalize_memory_is_flat_in_the_corpus_and_spilling_changes_no_byte() {
    let split = |n: usize, spill_mib: Option<&str>| -> (crate::common::Project, u64, Option<u64>) {
        let p = crate::common::Project::new();
        let langs = ["curl", "python", "go", "java", "javascript"];
        let mut text = String::new();
        for i in 0..n {
            // As in API Pack: an endpoint per ten records, an API per forty; some repeats.
            let (api, endpoint) = (i / 40, i / 10);
            let variant = if i % 97 == 0 { 0 } else { i };
            let record = json!({
                "api_name": format!("API {api}"), "lang": langs[i % langs.len()],
                "path": format!("/things{endpoint}/{{id}}"), "method": "GET",
                "instruction": format!("Get thing {endpoint}, variant {variant}, of API {api}"),
                "instruction_test": format!("Fetch thing {endpoint} ({i}) from API {api}"),
                "description": "Returns a thing. ".repeat(20),
                "api_description": "An API. ".repeat(40),
                "code": format!("curl -X GET 'https://api{api}.example.com/things{endpoint}/{variant}' -d '{}'", "x".repeat(600)),
                "unique_id": i.to_string(),
            });
            text.push_str(&record.to_string());
            text.push('\n');
        }
        p.write("records.jsonl", &text);
        let manifest = "[experiment]\nname = \"memory\"\nseed = 1\n\n[stages.ingest]\nkind = \"ingest\"\nsource = { jsonl = \"records.jsonl\" }\n\n[stages.split]\nkind = \"normalize\"\nneeds = [\"ingest\"]\nheldout = { level1 = 50, level2 = 50, level3 = 50, max_api_percent = 10, level3_apis = 20 }\n";
        p.write("m.toml", manifest);
        p.run(&["run", "m.toml", "ingest"]).expect_code(0);
        let mut command = p.command(&["run", "m.toml", "--format", "json"]);
        match spill_mib {
            Some(mib) => command.env(apitune::data::SPILL_BUDGET_ENV, mib),
            None => command.env_remove(apitune::data::SPILL_BUDGET_ENV),
        };
        let run = crate::common::Run(command.output().expect("apitune runs"));
        let json = run.expect_code(0).json();
        let arm = json["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == "split");
        assert_eq!(arm.unwrap()["status"], "ran", "{json}");
        (p, text.len() as u64, json["peak_rss_bytes"].as_u64())
    };
    let split_files = |p: &crate::common::Project| -> Vec<(String, Vec<u8>)> {
        let dir = p.artifact_with("level3.jsonl");
        [
            "train.jsonl",
            "level1.jsonl",
            "level2.jsonl",
            "level3.jsonl",
            "endpoints.jsonl",
        ]
        .iter()
        .map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap()))
        .collect()
    };

    let (_, small_input, small_peak) = split(10_000, Some("1"));
    let (spilled, large_input, large_peak) = split(100_000, Some("1"));
    let (in_memory, _, _) = split(100_000, None);
    let files = split_files(&spilled);
    assert!(files.iter().all(|(_, bytes)| !bytes.is_empty()));
    assert!(
        files == split_files(&in_memory),
        "a split whose sorts spilled to disk differs from one whose sorts fit in memory"
    );

    let (Some(small_peak), Some(large_peak)) = (small_peak, large_peak) else {
        eprintln!("no peak RSS reported on this OS; nothing to compare");
        return;
    };
    eprintln!(
        "normalize peak RSS {:.1} -> {:.1} MB for {:.1} -> {:.1} MB of records",
        small_peak as f64 / 1e6,
        large_peak as f64 / 1e6,
        small_input as f64 / 1e6,
        large_input as f64 / 1e6
    );
    assert!(
        (large_peak as f64) < 1.5 * small_peak as f64,
        "peak RSS grew from {small_peak} to {large_peak} bytes for ten times the records"
    );
}
