//! Random and truncated bytes into every reader: errors, never panics; deep nesting is refused in
//! linear time.

use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use apitune::data::apipack::{read_apipack_array, read_jsonl};
use apitune::data::json_array::for_each_array_element;
use apitune::data::openapi::depth::yaml_too_deep;
use apitune::data::openapi::{load_spec, spec_records};
use apitune::data::{ApiRecord, DataError};
use proptest::prelude::*;

fn valid_array() -> Vec<u8> {
    let record = serde_json::json!({
        "api_name": "Hotels \"quoted\" \\ [x]",
        "api_call_data": {"api_call": "curl --url 'https//h.test/{a}' -d '{\"k\": [1, {}]}'", "lang": "cURL", "path": "/a"},
        "instruction": "Find ünïcödé hotels, [please].",
        "unique_id": "h_1"
    });
    serde_json::to_vec(&serde_json::json!([record, record, record])).unwrap()
}

/// Runs the whole API Pack path (scanner + record parsing) over `bytes`; counts records.
fn read_array_bytes(bytes: &[u8], buffer: usize) -> Result<usize, DataError> {
    let mut count = 0;
    for_each_array_element(
        BufReader::with_capacity(buffer, bytes),
        Path::new("fuzz.json"),
        1 << 16,
        |element| {
            let _ = serde_json::from_slice::<serde_json::Value>(element.bytes);
            count += 1;
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(count)
}

#[test]
fn every_strict_prefix_of_an_array_file_is_an_error() {
    let bytes = valid_array();
    assert_eq!(read_array_bytes(&bytes, 7).unwrap(), 3);
    for cut in 0..bytes.len() {
        let result = read_array_bytes(&bytes[..cut], 5);
        assert!(result.is_err(), "prefix of {cut} bytes was accepted");
    }
}

#[test]
fn truncated_files_through_the_file_readers() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = valid_array();
    let path = dir.path().join("t.json");
    let jsonl_path = dir.path().join("t.jsonl");
    for cut in (0..bytes.len()).step_by(7) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let mut sink = |item: Result<ApiRecord, DataError>| item.map(|_| ControlFlow::Continue(()));
        assert!(read_apipack_array(&path, &mut sink).is_err(), "cut {cut}");
        std::fs::write(&jsonl_path, &bytes[1..cut.max(1)]).unwrap();
        let mut lenient = |_: Result<ApiRecord, DataError>| Ok(ControlFlow::Continue(()));
        read_jsonl(&jsonl_path, &mut lenient).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_array_reader(bytes in proptest::collection::vec(any::<u8>(), 0..512), buffer in 1usize..64) {
        let _ = read_array_bytes(&bytes, buffer);
    }

    #[test]
    fn structured_noise_never_panics_the_array_reader(
        pieces in proptest::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("{"), Just("}"), Just(","), Just("\""), Just("\\"), Just(" "),
            Just("1"), Just("null"), Just(":"), Just("\u{feff}"), Just("é")
        ], 0..80),
        buffer in 1usize..16,
    ) {
        let text: String = pieces.concat();
        let _ = read_array_bytes(text.as_bytes(), buffer);
    }

    #[test]
    fn mutated_records_are_errors_or_records(index in 0usize..400, byte in any::<u8>()) {
        let mut bytes = valid_array();
        let index = index % bytes.len();
        bytes[index] = byte;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        std::fs::write(&path, &bytes).unwrap();
        let mut sink = |item: Result<ApiRecord, DataError>| -> Result<ControlFlow<()>, DataError> {
            if let Err(error) = item {
                // Bad records name the file and the record.
                let message = error.to_string();
                assert!(message.contains("m.json") && message.contains("record"), "{message}");
            }
            Ok(ControlFlow::Continue(()))
        };
        let _ = read_apipack_array(&path, &mut sink);
    }

    #[test]
    fn random_specs_never_panic(text in "[a-z{}\\[\\]:,'\"$#/ \n-]{0,200}", yaml in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if yaml { "s.yaml" } else { "s.json" });
        std::fs::write(&path, format!("openapi: 3.0.0\n{text}")).unwrap();
        if let Ok(document) = load_spec(&path) {
            let langs = vec!["curl".to_string(), "python".to_string()];
            let _ = spec_records(&document, "s", &langs, &mut |_| Ok(true));
        }
    }

    #[test]
    fn odd_but_valid_openapi_shapes_never_panic(
        path in "/[a-z{}]{0,12}",
        method in prop_oneof![Just("get"), Just("post"), Just("x-ext"), Just("parameters")],
        param_in in prop_oneof![Just("query"), Just("path"), Just("header"), Just("cookie"), Just("body")],
        schema_ref in prop_oneof![Just("#/components/schemas/A"), Just("#/nowhere"), Just("other.yaml#/A"), Just("#")],
        server in prop_oneof![Just(""), Just("/rel"), Just("https://x.test/{v}"), Just("//h.test"), Just("ftp:")],
    ) {
        let document = serde_json::json!({
            "openapi": "3.1.0",
            "servers": [{"url": server}],
            "paths": {path: {method: {
                "parameters": [{"name": "p", "in": param_in, "schema": {"$ref": schema_ref}}, 7, {"$ref": schema_ref}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": schema_ref}}}},
                "security": [{"missing": []}],
                "x-code-samples": [{"lang": 3}, "x"]
            }}},
            "components": {"schemas": {"A": {"$ref": "#/components/schemas/A"}}}
        });
        let langs: Vec<String> = apitune::data::TARGET_LANGS.iter().map(|l| l.to_string()).collect();
        let _ = spec_records(&document, "s", &langs, &mut |_| Ok(true));
    }
}

/// Loads `text` as spec `name` in `dir`: the error text and how long it took.
fn load_error_timed(dir: &Path, name: &str, text: &str) -> (String, Duration) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let start = Instant::now();
    let result = load_spec(&path);
    let elapsed = start.elapsed();
    (result.expect_err(name).to_string(), elapsed)
}

#[test]
fn deeply_nested_yaml_is_rejected_quickly_with_its_line() {
    const LEVELS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let head = "openapi: 3.0.0\ninfo: {title: Deep, version: '1'}\npaths:\n  /deep:\n    x-deep:\n";
    let indented: String = (0..1000)
        .map(|level| format!("{}a:\n", " ".repeat(level)))
        .collect();
    let cases = [
        (
            "flow_seq.yaml",
            format!("{head}      {}{}\n", "[".repeat(LEVELS), "]".repeat(LEVELS)),
            6,
        ),
        (
            "flow_map.yaml",
            format!(
                "{head}      {}x{}\n",
                "{a: ".repeat(LEVELS),
                "}".repeat(LEVELS)
            ),
            6,
        ),
        (
            "flow_lines.yaml",
            format!("{head}      {}", "[\n".repeat(LEVELS)),
            258,
        ),
        (
            "block_seq.yaml",
            format!("{head}      {}x\n", "- ".repeat(LEVELS)),
            6,
        ),
        (
            "block_keys.yaml",
            format!("{head}      {}x\n", "? ".repeat(LEVELS)),
            6,
        ),
        (
            "indented_maps.yaml",
            format!("openapi: 3.0.0\npaths:\n{indented}"),
            259,
        ),
    ];
    for (name, text, line) in cases {
        let (err, elapsed) = load_error_timed(dir.path(), name, &text);
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
        let expected = format!(
            "{name}: line {line}: invalid_spec (nesting deeper than 256 levels; OpenAPI specs never need this)"
        );
        assert!(err.contains(&expected), "{name}: {err}");
    }
}

#[test]
fn deeply_nested_json_is_rejected_quickly_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let text =
        format!("{{\"openapi\": \"3.0.0\",\n\"paths\": {{\"/deep\": {{\"x-deep\":\n{deep}}}}}}}");
    let (err, elapsed) = load_error_timed(dir.path(), "deep.json", &text);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(
        err.contains("deep.json: line 3: invalid_spec (nesting deeper than 127 levels"),
        "{err}"
    );
}

/// A nested value whose strings are full of YAML indicators (so the emitter quotes them or writes
/// block scalars) and whose maps and sequences nest in every combination.
fn nested_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i32>().prop_map(serde_json::Value::from),
        "[a-z \\[\\]{}:#'\"|>&!*,\n-]{0,16}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(24, 200, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z \\[{:#'\"-]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn nesting(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The pre-scan's depth is at least the real depth (deep input is caught) and at most about
    /// twice it (what the YAML parser accepts, 128 levels, passes the 256 limit), in block style
    /// and in flow style.
    #[test]
    fn yaml_depth_scan_brackets_the_real_depth(value in nested_value()) {
        let real = nesting(&value);
        for text in [serde_norway::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
            prop_assert_eq!(yaml_too_deep(text.as_bytes(), 2 * real + 2), None, "{}", text);
            if real > 0 {
                prop_assert!(yaml_too_deep(text.as_bytes(), real - 1).is_some(), "{}", text);
            }
        }
    }
}
