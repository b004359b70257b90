//! Random and truncated bytes into every reader: errors, never panics.

use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;

use apitune::data::apipack::{read_apipack_array, read_jsonl};
use apitune::data::json_array::for_each_array_element;
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
