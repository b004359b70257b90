//! Every ingest source, and bad input: errors name the file and record; `skip` counts per reason.

use std::path::{Path, PathBuf};

use apitune::data::{
    ApiRecord, BadRecordPolicy, DataError, IngestInputs, IngestParams, PathPatterns, SkipReason,
    SkippedPath, SourceSpec, ingest_input_files, ingest_inputs, read_records, run_ingest,
};
use serde_json::{Value, json};

fn apipack_record(api: &str, lang: &str, code: &str, path: &str, id: &str) -> Value {
    json!({
        "api_name": api,
        "api_description": "Finds hotels.",
        "api_call_data": {
            "api_call": code,
            "lang": lang,
            "functionality": "Search hotels",
            "api_arguments": {},
            "description": "Search hotels by city.",
            "domain": ["Travel"],
            "path": path
        },
        "instruction": "Find hotels in Lisbon.",
        "instruction_test": "Which hotels are there in Lisbon?",
        "input": "",
        "output": "**domain**:[Travel]\n**api_call**:...",
        "unique_id": id
    })
}

fn params(source: SourceSpec) -> IngestParams {
    IngestParams {
        source,
        langs: None,
        on_bad_record: BadRecordPolicy::Error,
        limit: None,
        follow_links: false,
    }
}

fn one(pattern: &str) -> PathPatterns {
    PathPatterns::One(pattern.to_string())
}

fn ingest(params: &IngestParams, base: &Path) -> Result<(Value, Vec<ApiRecord>), DataError> {
    let out = tempfile::tempdir().unwrap();
    let summary = run_ingest(params, base, out.path(), &|_| {})?;
    let records = read_records(&out.path().join("records.jsonl")).collect::<Result<Vec<_>, _>>()?;
    Ok((summary, records))
}

const RAPIDAPI_CURL: &str = "curl --request GET \\\n\t--url 'https//hotels4.p.rapidapi.com/locations/search?query=lisbon' \\\n\t--header 'X-RapidAPI-Key: SIGN-UP-FOR-KEY'";
const PYTHON_CODE: &str = "import http.client\n\nconn = http.client.HTTPSConnection(\"hotels4.p.rapidapi.com\")\n\nconn.request(\"GET\", \"/locations/search?query=lisbon\")";

#[test]
fn apipack_array_with_rapidapi_scheme_and_mixed_case_langs() {
    let dir = tempfile::tempdir().unwrap();
    let records = json!([
        apipack_record(
            "Hotels",
            "cURL",
            RAPIDAPI_CURL,
            "/locations/search",
            "hotels_1"
        ),
        apipack_record(
            "Hotels",
            " Python ",
            PYTHON_CODE,
            "/locations/search",
            "hotels_2"
        ),
        apipack_record(
            "Hotels",
            "javascript XHR",
            "xhr.open(\"GET\", \"https://hotels4.p.rapidapi.com/locations/search\");",
            "/locations/search",
            "hotels_3"
        ),
    ]);
    std::fs::write(
        dir.path().join("total_data_cleaned_mixed.json"),
        serde_json::to_vec_pretty(&records).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("other.json"), "[]").unwrap();

    let params = params(SourceSpec::Apipack(one("total_data_*.json")));
    let files = ingest_input_files(&params, dir.path()).unwrap();
    assert_eq!(
        files,
        vec![dir.path().join("total_data_cleaned_mixed.json")]
    );
    let (summary, records) = ingest(&params, dir.path()).unwrap();
    assert_eq!(summary["records"], 3);
    assert_eq!(
        summary["per_lang"],
        json!({"curl": 1, "javascript": 1, "python": 1})
    );
    let langs: Vec<&str> = records.iter().map(|r| r.lang.as_str()).collect();
    assert_eq!(langs, ["curl", "python", "javascript"]);
    let curl = &records[0];
    // The broken scheme is kept in the code as in the data, and the host is still recognised.
    assert!(curl.code.contains("'https//hotels4.p.rapidapi.com"));
    assert_eq!(curl.host.as_deref(), Some("hotels4.p.rapidapi.com"));
    assert_eq!(curl.method.as_deref(), Some("GET"));
    assert_eq!(curl.path, "/locations/search");
    assert_eq!(curl.domain, ["Travel"]);
    assert_eq!(curl.unique_id, "hotels_1");
    assert_eq!(curl.instruction_test, "Which hotels are there in Lisbon?");
    assert_eq!(records[1].host.as_deref(), Some("hotels4.p.rapidapi.com"));

    // The langs filter takes labels in any spelling.
    let mut filtered = params.clone();
    filtered.langs = Some(vec!["PYTHON".into()]);
    let (summary, records) = ingest(&filtered, dir.path()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        summary["filtered_out_by_lang"],
        json!({"curl": 1, "javascript": 1})
    );

    let mut limited = params;
    limited.limit = Some(2);
    let (summary, records) = ingest(&limited, dir.path()).unwrap();
    assert_eq!(
        (records.len(), summary["limit_reached"].as_bool()),
        (2, Some(true))
    );
}

#[test]
fn jsonl_accepts_apipack_and_apirecord_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let api_record = json!({
        "api_name": "Pets", "lang": "Go", "path": "/pets", "method": "get", "instruction": "List pets.",
        "code": "package main", "unique_id": "pets_1", "api_arguments": {"limit": 1}
    });
    let text = format!(
        "{}\n\n{}\n",
        apipack_record(
            "Hotels",
            "Node",
            "const request = require('request');",
            "/x",
            "h1"
        ),
        api_record
    );
    std::fs::write(dir.path().join("mixed.jsonl"), text).unwrap();
    let (summary, records) =
        ingest(&params(SourceSpec::Jsonl(one("mixed.jsonl"))), dir.path()).unwrap();
    assert_eq!(summary["records"], 2);
    assert_eq!(records[0].lang, "node");
    assert_eq!(records[1].lang, "go");
    assert_eq!(records[1].api_arguments, json!({"limit": 1}));
    assert_eq!(records[1].instruction_test, "");
}

const SPEC_30_YAML: &str = r##"
openapi: 3.0.3
info:
  title: Kite Club
  description: Kites and flights.
servers:
  - url: https://api.kites.test/v1
security:
  - key: []
paths:
  /kites/{kiteId}:
    parameters:
      - $ref: '#/components/parameters/KiteId'
    get:
      operationId: getKite
      summary: Get a kite
      description: Fetches one kite. Includes its flights.
      tags: [Kites]
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Kite'}
  /kites:
    post:
      operationId: createKite
      description: Registers a kite for the club.
      requestBody:
        $ref: '#/components/requestBodies/NewKite'
      responses:
        '201': {description: created}
      x-code-samples:
        - lang: Shell
          source: "curl -X POST https://api.kites.test/v1/kites -d '{}'"
components:
  parameters:
    KiteId: {name: kiteId, in: path, required: true, schema: {type: string}}
  requestBodies:
    NewKite:
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Kite'}
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Kite-Key}
  schemas:
    Kite:
      type: object
      properties:
        name: {type: string, example: Red Baron}
        span: {type: number}
        parent: {$ref: '#/components/schemas/Kite'}
"##;

fn spec_31_json() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Tide Tables API"},
        "servers": [{"url": "http://{env}.tides.test", "variables": {"env": {"default": "sandbox"}}}],
        "paths": {
            "/stations/{id}/tides": {
                "get": {
                    "operationId": "listStationTides",
                    "parameters": [
                        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "date", "in": "query", "required": true, "schema": {"type": ["string", "null"], "examples": ["2026-01-01"]}},
                        {"name": "X-Trace", "in": "header", "required": true, "schema": {"type": "integer"}}
                    ],
                    "x-codeSamples": [{"lang": "Python", "source": "import tides\ntides.get('x')"}],
                    "responses": {"200": {"description": "ok"}}
                }
            }
        }
    })
}

#[test]
fn openapi_json_and_yaml_30_and_31_with_refs_and_code_samples() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("specs/nested")).unwrap();
    std::fs::write(dir.path().join("specs/kites.yml"), SPEC_30_YAML).unwrap();
    std::fs::write(
        dir.path().join("specs/nested/tides.json"),
        serde_json::to_vec(&spec_31_json()).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("specs/README.md"), "not a spec").unwrap();
    let params = IngestParams {
        langs: Some(vec!["curl".into(), "python".into(), "Node".into()]),
        ..params(SourceSpec::Openapi(one("specs")))
    };
    assert_eq!(ingest_input_files(&params, dir.path()).unwrap().len(), 2);
    let (summary, records) = ingest(&params, dir.path()).unwrap();
    assert_eq!(summary["records"], 9, "{summary:#}");
    assert_eq!(summary["openapi"]["from_code_samples"], 2);

    let find = |id: &str| {
        records
            .iter()
            .find(|r| r.unique_id == id)
            .unwrap_or_else(|| panic!("{id} missing: {records:#?}"))
    };
    let get_kite = find("kites_0_curl");
    assert_eq!(get_kite.method.as_deref(), Some("GET"));
    assert_eq!(get_kite.path, "/kites/{kiteId}");
    assert_eq!(get_kite.host.as_deref(), Some("api.kites.test"));
    assert_eq!(
        get_kite.base_url.as_deref(),
        Some("https://api.kites.test/v1")
    );
    assert_eq!(get_kite.domain, ["Kites"]);
    assert_eq!(get_kite.instruction, "Get a kite using the Kite Club API.");
    assert_eq!(
        get_kite.instruction_test,
        "I need to call the Kite Club API: Fetches one kite."
    );
    assert_eq!(
        get_kite.code,
        "curl --request GET \\\n  --url https://api.kites.test/v1/kites/%7BkiteId%7D \\\n  --header 'X-Kite-Key: REPLACE_KEY_VALUE'"
    );
    assert_eq!(
        get_kite.api_arguments,
        json!({"kiteId": "SOME_STRING_VALUE"})
    );

    // requestBody $ref -> schema $ref; the recursive `parent` stops at null; the spec's sample replaces curl.
    let create_python = find("kites_1_python");
    assert!(
        create_python
            .code
            .contains(r#"payload = "{\"name\":\"Red Baron\",\"span\":0,\"parent\":null}""#),
        "{}",
        create_python.code
    );
    assert_eq!(
        create_python.instruction,
        "Registers a kite for the club using the Kite Club API."
    );
    assert_eq!(
        create_python.instruction_test,
        "Show me how to call the Kite Club API for this: registers a kite for the club."
    );
    assert_eq!(
        find("kites_1_curl").code,
        "curl -X POST https://api.kites.test/v1/kites -d '{}'"
    );

    let tides_node = find("nested/tides_0_node");
    assert!(
        tides_node
            .code
            .contains("url: 'http://sandbox.tides.test/stations/%7Bid%7D/tides'"),
        "{}",
        tides_node.code
    );
    assert!(
        tides_node.code.contains("qs: {'date': '2026-01-01'}"),
        "{}",
        tides_node.code
    );
    assert!(
        tides_node
            .code
            .contains("headers: {'X-Trace': 'SOME_INTEGER_VALUE'}"),
        "{}",
        tides_node.code
    );
    assert_eq!(
        tides_node.instruction,
        "List station tides using the Tide Tables API."
    );
    assert_eq!(
        find("nested/tides_0_python").code,
        "import tides\ntides.get('x')"
    );
    assert!(!records.iter().any(|r| r.lang == "go"));
}

fn bad_apipack_file(dir: &Path) {
    let good = apipack_record("Hotels", "curl", RAPIDAPI_CURL, "/x", "h1").to_string();
    let missing_code =
        json!({"api_name": "Hotels", "instruction": "x", "api_call_data": {"lang": "curl"}})
            .to_string();
    // Element 2 is not valid JSON (an unquoted word) but its brackets balance, so the stream
    // goes on after it.
    let text = format!("[{good},\n {missing_code},\n {{\"api_name\": oops}},\n {good}]");
    std::fs::write(dir.join("bad.json"), text).unwrap();
}

#[test]
fn bad_records_name_file_and_index_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    bad_apipack_file(dir.path());
    let mut params = params(SourceSpec::Apipack(one("bad.json")));
    let err = ingest(&params, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("bad.json")
            && err.contains("record 1 (array element at byte offset")
            && err.contains("wrong_shape")
            && err.contains("api_call"),
        "{err}"
    );

    params.on_bad_record = BadRecordPolicy::Skip;
    let (summary, records) = ingest(&params, dir.path()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        summary["skipped"],
        json!({"invalid_json": 1, "wrong_shape": 1})
    );
    assert!(
        summary["skipped_examples"][1]
            .as_str()
            .unwrap()
            .contains("record 2"),
        "{summary:#}"
    );

    // JSONL: line numbers.
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"api_name\": 1}\n[1]\n{truncated",
    )
    .unwrap();
    let mut params = params.clone();
    params.source = SourceSpec::Jsonl(one("bad.jsonl"));
    params.on_bad_record = BadRecordPolicy::Error;
    let err = ingest(&params, dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl: line 1:"), "{err}");
    params.on_bad_record = BadRecordPolicy::Skip;
    let (summary, _) = ingest(&params, dir.path()).unwrap();
    assert_eq!(
        summary["skipped"],
        json!({"invalid_json": 1, "wrong_shape": 2})
    );
}

#[test]
fn truncated_array_is_a_file_error_even_when_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let good = apipack_record("Hotels", "curl", RAPIDAPI_CURL, "/x", "h1").to_string();
    std::fs::write(
        dir.path().join("cut.json"),
        format!("[{good}, {}", &good[..40]),
    )
    .unwrap();
    let params = IngestParams {
        on_bad_record: BadRecordPolicy::Skip,
        ..params(SourceSpec::Apipack(one("cut.json")))
    };
    let err = ingest(&params, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("cut.json") && err.contains("inside record 1") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn bad_specs_error_or_are_skipped_per_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("specs")).unwrap();
    std::fs::write(
        dir.path().join("specs/a_swagger.json"),
        r#"{"swagger": "2.0", "paths": {}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("specs/b_broken.yaml"),
        "openapi: 3.0.0\npaths: [unclosed",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("specs/c_old.json"),
        r#"{"openapi": "4.0.0", "paths": {}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("specs/d_good.yml"), SPEC_30_YAML).unwrap();
    let mut params = params(SourceSpec::Openapi(one("specs")));
    let err = ingest(&params, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("a_swagger.json") && err.contains("swagger2_unsupported"),
        "{err}"
    );
    params.on_bad_record = BadRecordPolicy::Skip;
    let (summary, records) = ingest(&params, dir.path()).unwrap();
    assert_eq!(records.len(), 20);
    assert_eq!(
        summary["skipped"],
        json!({"invalid_spec": 1, "swagger2_unsupported": 1, "unsupported_openapi_version": 1})
    );
}

#[test]
fn missing_inputs_and_bad_params_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let params = params(SourceSpec::Apipack(one("nothing/*.json")));
    let err = ingest_input_files(&params, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing/*.json") && err.contains("matched no files"),
        "{err}"
    );
    std::fs::create_dir_all(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/k.yaml"), SPEC_30_YAML).unwrap();
    let params = IngestParams {
        langs: Some(vec!["cobol".into()]),
        ..params_openapi()
    };
    let err = ingest(&params, dir.path()).unwrap_err().to_string();
    assert!(err.contains("cobol"), "{err}");
}

fn params_openapi() -> IngestParams {
    params(SourceSpec::Openapi(one("specs")))
}

#[test]
fn params_parse_from_toml_with_defaults_and_reject_unknown_keys() {
    let parsed: IngestParams =
        toml::from_str("source = { openapi = \"experiments/data/specs\" }\nlangs = [\"curl\"]")
            .unwrap();
    assert_eq!(
        parsed.source,
        SourceSpec::Openapi(one("experiments/data/specs"))
    );
    assert_eq!(parsed.on_bad_record, BadRecordPolicy::Error);
    let parsed: IngestParams = toml::from_str(
        "source = { apipack = [\"a/*.json\", \"b.json\"] }\non_bad_record = \"skip\"\nlimit = 5",
    )
    .unwrap();
    assert_eq!(parsed.on_bad_record, BadRecordPolicy::Skip);
    assert!(
        toml::from_str::<IngestParams>("source = { openapi = \"x\" }\nlang = [\"curl\"]").is_err()
    );
    assert!(toml::from_str::<IngestParams>("source = { swagger = \"x\" }").is_err());
}

#[test]
fn params_have_json_schemas_for_the_manifest() {
    let schema = serde_json::to_string(&schemars::schema_for!(IngestParams)).unwrap();
    for word in [
        "openapi",
        "apipack",
        "jsonl",
        "on_bad_record",
        "skip",
        "limit",
    ] {
        assert!(schema.contains(word), "{word} missing from {schema}");
    }
    let schema =
        serde_json::to_string(&schemars::schema_for!(apitune::data::NormalizeParams)).unwrap();
    for word in ["heldout", "level3", "samples", "level1_in_train", "overall"] {
        assert!(schema.contains(word), "{word} missing from {schema}");
    }
}

/// Runs `f` on a thread and fails the test if it has not finished within 10 s (a walk that
/// follows a link loop never does).
#[cfg(unix)]
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(f()));
    result
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not finish within 10 s"))
}

/// `base/s` holding `kites.yaml` and the given links (name, absolute target).
#[cfg(unix)]
fn source_with_links(base: &Path, links: &[(&str, &Path)]) {
    std::fs::create_dir_all(base.join("s")).unwrap();
    std::fs::write(base.join("s/kites.yaml"), SPEC_30_YAML).unwrap();
    for (name, target) in links {
        std::os::unix::fs::symlink(target, base.join("s").join(name)).unwrap();
    }
}

#[cfg(unix)]
fn ingest_in_thread(
    params: IngestParams,
    base: &Path,
) -> Result<(Value, Vec<ApiRecord>), DataError> {
    let base = base.to_path_buf();
    within_10s("ingest", move || ingest(&params, &base))
}

#[cfg(unix)]
fn inputs_in_thread(params: &IngestParams, base: &Path) -> Result<IngestInputs, DataError> {
    let (params, base) = (params.clone(), base.to_path_buf());
    within_10s("listing the inputs", move || ingest_inputs(&params, &base))
}

#[cfg(unix)]
#[test]
fn link_loops_in_a_source_directory_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    source_with_links(dir.path(), &[("l1", &s), ("l2", &s)]);
    let params = params(SourceSpec::Openapi(one("s")));
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(inputs.files, vec![s.join("kites.yaml")]);
    let skipped: Vec<(PathBuf, SkipReason)> = inputs
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (s.join("l1"), SkipReason::SymbolicLink),
            (s.join("l2"), SkipReason::SymbolicLink)
        ]
    );
    assert_eq!(
        inputs.skipped[0].message(dir.path()),
        "skipped symbolic link `s/l1` (set `follow_links = true` on the ingest stage to follow links)"
    );
    let (summary, records) = ingest_in_thread(params.clone(), dir.path()).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 1, "{summary:#}");
    assert_eq!(records.len(), 20);
    assert_eq!(
        summary["skipped_links"],
        json!([{"path": "s/l1", "reason": "symbolic_link"}, {"path": "s/l2", "reason": "symbolic_link"}])
    );

    // A glob through the loop: `**` does not descend into links either.
    let params = IngestParams {
        source: SourceSpec::Openapi(one("s/**/*.yaml")),
        ..params
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(inputs.files, vec![s.join("kites.yaml")]);
    assert_eq!(inputs.skipped.len(), 2, "{:?}", inputs.skipped);
}

#[cfg(unix)]
#[test]
fn a_self_link_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    source_with_links(dir.path(), &[("self", &s)]);
    for follow_links in [false, true] {
        let params = IngestParams {
            follow_links,
            ..params(SourceSpec::Openapi(one("s")))
        };
        let (summary, records) = ingest_in_thread(params, dir.path()).unwrap();
        assert_eq!(
            summary["files"],
            json!([{"path": "s/kites.yaml", "operations": 2, "records": 20, "skipped": 0}])
        );
        assert_eq!(records.len(), 20, "follow_links = {follow_links}");
    }
}

#[cfg(unix)]
#[test]
fn links_out_of_the_source_directory_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("tides.json"),
        serde_json::to_vec(&spec_31_json()).unwrap(),
    )
    .unwrap();
    let s = dir.path().join("s");
    source_with_links(
        dir.path(),
        &[
            ("out", &outside),
            ("tides.json", &outside.join("tides.json")),
        ],
    );

    let params = params(SourceSpec::Openapi(one("s")));
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(inputs.files, vec![s.join("kites.yaml")]);
    let reasons: Vec<SkipReason> = inputs.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [SkipReason::SymbolicLink, SkipReason::SymbolicLink]
    );

    let params = IngestParams {
        follow_links: true,
        ..params
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(inputs.files, vec![s.join("kites.yaml")]);
    let reasons: Vec<SkipReason> = inputs.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [SkipReason::OutsideSource, SkipReason::OutsideSource]
    );
    assert!(
        inputs.skipped[0]
            .message(dir.path())
            .contains("`s/out`: it points outside the source directory")
    );

    // Named explicitly, the outside directory is read (once, though a link in `s` leads there too).
    let both = PathPatterns::Many(vec!["s".into(), "outside".into()]);
    let params = IngestParams {
        source: SourceSpec::Openapi(both),
        ..params
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(
        inputs.files,
        vec![s.join("kites.yaml"), outside.join("tides.json")]
    );

    // A file a glob matches is read even when it is a link; a matched link to a directory is not.
    let params = IngestParams {
        source: SourceSpec::Openapi(one("s/*")),
        follow_links: false,
        ..params
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(
        inputs.files,
        vec![s.join("kites.yaml"), s.join("tides.json")]
    );
    assert_eq!(
        inputs.skipped,
        vec![SkippedPath {
            path: s.join("out"),
            reason: SkipReason::SymbolicLink
        }]
    );
}

#[cfg(unix)]
#[test]
fn follow_links_ends_link_loops_and_reads_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    std::fs::create_dir_all(s.join("sub")).unwrap();
    std::fs::write(
        s.join("sub/tides.json"),
        serde_json::to_vec(&spec_31_json()).unwrap(),
    )
    .unwrap();
    std::os::unix::fs::symlink(&s, s.join("sub/up")).unwrap();
    source_with_links(
        dir.path(),
        &[
            ("l1", &s),
            ("l2", &s),
            ("a_sub", &s.join("sub")),
            ("z_alias.yaml", &s.join("kites.yaml")),
        ],
    );
    let params = IngestParams {
        follow_links: true,
        ..params(SourceSpec::Openapi(one("s")))
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    // `a_sub` sorts first, so the real `sub` is reached (and read) through it.
    assert_eq!(
        inputs.files,
        vec![s.join("a_sub/tides.json"), s.join("kites.yaml")]
    );
    assert_eq!(inputs.skipped, vec![]);
    let (summary, records) = ingest_in_thread(params.clone(), dir.path()).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 2, "{summary:#}");
    assert_eq!(
        records
            .iter()
            .filter(|r| r.unique_id.starts_with("kites_"))
            .count(),
        20
    );
    let ids: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.unique_id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "a file was read twice");
    assert!(summary.get("skipped_links").is_none(), "{summary:#}");

    let params = IngestParams {
        source: SourceSpec::Openapi(one("s/**/*.json")),
        ..params
    };
    let inputs = inputs_in_thread(&params, dir.path()).unwrap();
    assert_eq!(inputs.files, vec![s.join("a_sub/tides.json")]);
}

#[cfg(unix)]
#[test]
fn a_directory_of_links_only_says_why_nothing_matched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/kites.yaml"), SPEC_30_YAML).unwrap();
    std::fs::create_dir_all(dir.path().join("s")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("real/kites.yaml"),
        dir.path().join("s/kites.yaml"),
    )
    .unwrap();
    let err = ingest_input_files(&params(SourceSpec::Openapi(one("s"))), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("matched no files") && err.contains("skipped symbolic link `s/kites.yaml`"),
        "{err}"
    );
    assert!(err.contains("follow_links = true"), "{err}");
}
