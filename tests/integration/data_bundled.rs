//! The bundled corpus (experiments/data/specs) through ingest and normalize.

use std::collections::BTreeSet;
use std::path::Path;

use apitune::data::{
    ApiRecord, HeldoutSpec, IngestParams, NormalizeParams, PathPatterns, SourceSpec, TARGET_LANGS,
    ingest_input_files, read_records, run_ingest, run_normalize,
};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bundled_params() -> IngestParams {
    IngestParams {
        source: SourceSpec::Openapi(PathPatterns::One("experiments/data/specs".into())),
        langs: None,
        on_bad_record: Default::default(),
        limit: None,
        follow_links: false,
    }
}

#[test]
fn bundled_corpus_yields_1k_to_3k_records_in_every_target_language() {
    let out = tempfile::tempdir().unwrap();
    let params = bundled_params();
    let files = ingest_input_files(&params, manifest_dir()).unwrap();
    assert!((6..=10).contains(&files.len()), "{files:?}");
    let last_progress = std::cell::Cell::new(0u64);
    let summary = run_ingest(&params, manifest_dir(), out.path(), &|n| {
        last_progress.set(n)
    })
    .unwrap();
    let total = summary["records"].as_u64().unwrap();
    assert_eq!(last_progress.get(), total);
    assert!((1000..=3000).contains(&total), "{summary:#}");
    assert_eq!(summary["skipped_total"], 0, "{summary:#}");
    assert_eq!(summary["openapi"]["unresolved_refs"], 0, "{summary:#}");
    let records: Vec<ApiRecord> = read_records(&out.path().join("records.jsonl"))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len() as u64, total);
    let langs: BTreeSet<&str> = records.iter().map(|r| r.lang.as_str()).collect();
    assert_eq!(langs, TARGET_LANGS.iter().copied().collect());
    let ids: BTreeSet<&str> = records.iter().map(|r| r.unique_id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "unique ids repeat");
    for record in &records {
        assert!(
            !record.code.trim().is_empty() && !record.instruction.is_empty(),
            "{record:?}"
        );
        assert_ne!(record.instruction, record.instruction_test, "{record:?}");
        assert!(
            record.method.is_some() && record.host.is_some(),
            "{record:?}"
        );
    }
    // Summary paths are relative to the base directory: no machine paths in artifacts.
    let first = summary["files"][0]["path"].as_str().unwrap();
    assert!(first.starts_with("experiments/data/specs/"), "{first}");

    let split = tempfile::tempdir().unwrap();
    let normalize = NormalizeParams {
        heldout: HeldoutSpec {
            level1: 10,
            level2: 10,
            level3: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    let summary = run_normalize(&normalize, 7, out.path(), split.path()).unwrap();
    assert_eq!(summary["shortfall"], serde_json::json!({}), "{summary:#}");
    for level in ["level1", "level2", "level3"] {
        assert_eq!(summary["splits"][level]["total"], 100, "{summary:#}");
    }
}

/// The YAML depth pre-scan passes every bundled spec, and its estimate stays close to the real
/// depth (JSON specs are YAML too).
#[test]
fn depth_prescan_passes_every_bundled_spec() {
    use apitune::data::openapi::depth::{MAX_YAML_NESTING, yaml_too_deep};
    fn nesting(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
            _ => 0,
        }
    }
    let files = ingest_input_files(&bundled_params(), manifest_dir()).unwrap();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            yaml_too_deep(&bytes, MAX_YAML_NESTING),
            None,
            "{}",
            file.display()
        );
        let real = nesting(&apitune::data::openapi::load_spec(&file).unwrap());
        let estimate = (0..=MAX_YAML_NESTING)
            .find(|&limit| yaml_too_deep(&bytes, limit).is_none())
            .unwrap();
        assert!(
            (real..=real + 2).contains(&estimate),
            "{}: real depth {real}, estimate {estimate}",
            file.display()
        );
    }
}
