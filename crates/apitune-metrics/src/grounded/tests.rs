//! Golden verdicts on a hand-made spec: one call per case the checks must tell apart.

use serde_json::json;

use apitune_data::openapi::api_contract;

use super::*;

/// A pet store: required query and header parameters, an API key in the query, a JSON body with
/// a required field, and a literal path beside a templated one.
fn pets() -> ContractIndex {
    let spec = json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets"},
        "servers": [{"url": "https://api.pets.test/v1"}],
        "security": [{"key": []}],
        "components": {
            "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
            "schemas": {
                "Pet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}
                }
            }
        },
        "paths": {
            "/pets": {
                "get": {"parameters": [
                    {"name": "status", "in": "query", "required": true, "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}}
                ]},
                "post": {"requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
                }}}
            },
            "/pets/search": {"get": {}},
            "/pets/{petId}": {
                "parameters": [{"name": "petId", "in": "path", "schema": {"type": "integer"}}],
                "get": {},
                "delete": {"parameters": [{"name": "X-Request-Id", "in": "header", "required": true}]}
            }
        }
    });
    ContractIndex::new(vec![api_contract(&spec, "pets")])
}

fn call(method: &str, url: &str, query: &[(&str, &str)], body: Option<&str>) -> HttpCall {
    HttpCall {
        method: method.to_string(),
        url: url.to_string(),
        query: query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        headers: Vec::new(),
        body: body.map(str::to_string),
    }
}

const PETS: &str = "https://api.pets.test/v1/pets";

fn operation(index: &ContractIndex, method: &str, path: &str) -> OperationRef {
    index
        .find_operation(0, method, path)
        .expect("operation in the spec")
}

#[test]
fn a_complete_call_is_valid_everywhere() {
    let index = pets();
    let reference = operation(&index, "GET", "/pets");
    let check = index.check_call(
        &call(
            "GET",
            PETS,
            &[("status", "sold"), ("limit", "3"), ("api_key", "k")],
            None,
        ),
        Some(0),
        Some(reference),
    );
    assert_eq!(check.status, CallStatus::Valid);
    assert_eq!(check.operation.as_deref(), Some("GET /pets"));
    assert!(check.call_valid);
    assert_eq!(check.params_complete, Some(true));
    assert_eq!(
        check.params_known,
        Some(true),
        "the API key's query name is declared"
    );
    assert_eq!(check.body_valid, None, "GET /pets declares no body");
    assert_eq!(check.same_operation, Some(true));
}

#[test]
fn wrong_method() {
    let check = pets().check_call(&call("PATCH", PETS, &[], None), Some(0), None);
    assert_eq!(check.status, CallStatus::WrongMethod);
    assert!(!check.call_valid);
    assert_eq!(
        check.params_complete, None,
        "parameters are checked on valid calls only"
    );
}

#[test]
fn unknown_path() {
    let check = pets().check_call(
        &call("GET", "https://api.pets.test/v1/owners", &[], None),
        Some(0),
        None,
    );
    assert_eq!(check.status, CallStatus::UnknownPath);
    // The server's base path is part of the match.
    let without_base = pets().check_call(
        &call(
            "GET",
            "https://api.pets.test/pets",
            &[("status", "a")],
            None,
        ),
        Some(0),
        None,
    );
    assert_eq!(without_base.status, CallStatus::UnknownPath);
}

#[test]
fn another_host() {
    let index = pets();
    let reference = operation(&index, "GET", "/pets");
    let check = index.check_call(
        &call(
            "GET",
            "https://api.other.test/v1/pets",
            &[("status", "a")],
            None,
        ),
        Some(0),
        Some(reference),
    );
    assert_eq!(check.status, CallStatus::OtherHost);
    assert_eq!(check.same_operation, Some(false));
    // Host case and the scheme's default port do not matter.
    let same_host = index.check_call(
        &call(
            "GET",
            "https://API.pets.test:443/v1/pets",
            &[("status", "a")],
            None,
        ),
        Some(0),
        None,
    );
    assert_eq!(same_host.status, CallStatus::Valid);
}

#[test]
fn missing_required_parameter() {
    let check = pets().check_call(&call("GET", PETS, &[("limit", "3")], None), Some(0), None);
    assert!(check.call_valid);
    assert_eq!(check.params_complete, Some(false));
    assert_eq!(check.missing_params, ["query:status"]);
    let index = pets();
    let delete = call("DELETE", &format!("{PETS}/42"), &[], None);
    let check = index.check_call(&delete, Some(0), None);
    assert_eq!(check.missing_params, ["header:X-Request-Id"]);
    let mut with_header = delete.clone();
    with_header.headers = vec![("x-request-id".into(), "1".into())];
    let check = index.check_call(&with_header, Some(0), None);
    assert_eq!(
        check.params_complete,
        Some(true),
        "header names are case-insensitive"
    );
}

#[test]
fn unknown_parameter() {
    let check = pets().check_call(
        &call("GET", PETS, &[("status", "a"), ("colour", "red")], None),
        Some(0),
        None,
    );
    assert!(check.call_valid);
    assert_eq!(check.params_complete, Some(true));
    assert_eq!(check.params_known, Some(false));
    assert_eq!(check.unknown_params, ["colour"]);
}

#[test]
fn body_missing_a_required_field() {
    let check = pets().check_call(
        &call("POST", PETS, &[], Some(r#"{"age": 3}"#)),
        Some(0),
        None,
    );
    assert!(check.call_valid);
    assert_eq!(check.body_valid, Some(false));
    assert!(
        check.body_errors[0].contains("name"),
        "{:?}",
        check.body_errors
    );
}

#[test]
fn body_of_the_wrong_type() {
    let check = pets().check_call(
        &call(
            "POST",
            PETS,
            &[],
            Some(r#"{"name": "Rex", "age": "three"}"#),
        ),
        Some(0),
        None,
    );
    assert_eq!(check.body_valid, Some(false));
    assert!(
        check.body_errors[0].starts_with("/age"),
        "{:?}",
        check.body_errors
    );
    let not_json = pets().check_call(&call("POST", PETS, &[], Some("name=Rex")), Some(0), None);
    assert_eq!(not_json.body_valid, Some(false));
}

#[test]
fn a_valid_body_and_a_missing_required_body() {
    let index = pets();
    let valid = index.check_call(
        &call("POST", PETS, &[], Some(r#"{"name": "Rex", "age": 3}"#)),
        Some(0),
        None,
    );
    assert_eq!(valid.body_valid, Some(true));
    assert!(valid.body_errors.is_empty());
    let missing = index.check_call(&call("POST", PETS, &[], None), Some(0), None);
    assert_eq!(missing.body_valid, Some(false));
}

#[test]
fn literal_segments_win_and_placeholders_fill_templates() {
    let index = pets();
    let search = index.check_call(
        &call("GET", &format!("{PETS}/search"), &[], None),
        Some(0),
        None,
    );
    assert_eq!(search.operation.as_deref(), Some("GET /pets/search"));
    // httpsnippet leaves an unfilled template percent-encoded in the URL.
    let templated = index.check_call(
        &call("GET", &format!("{PETS}/%7BpetId%7D"), &[], None),
        Some(0),
        None,
    );
    assert_eq!(templated.operation.as_deref(), Some("GET /pets/{petId}"));
    let trailing_slash = index.check_call(
        &call("GET", &format!("{PETS}/7/"), &[], None),
        Some(0),
        None,
    );
    assert_eq!(
        trailing_slash.operation.as_deref(),
        Some("GET /pets/{petId}")
    );
}

#[test]
fn snippets_without_a_readable_call_are_unchecked_never_valid() {
    let index = pets();
    let reference = operation(&index, "GET", "/pets");
    for (lang, snippet) in [
        ("java", "OkHttpClient client = new OkHttpClient();"),
        ("curl", "curl --request GET"),
        ("python", "import requests\n"),
        ("kotlin", "val x = 1"),
    ] {
        let check = index.check(snippet, lang, Some(0), Some(reference));
        assert_eq!(check.status, CallStatus::Unchecked, "{lang}: {snippet}");
        assert!(!check.call_valid);
        assert_eq!(check.same_operation, Some(false));
    }
}

#[test]
fn the_scope_limits_resolution_to_one_api() {
    let other = json!({
        "openapi": "3.1.0",
        "info": {"title": "Weather"},
        "servers": [{"url": "https://weather.test"}],
        "paths": {"/forecast": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"type": "object", "properties": {"days": {"type": "integer", "maximum": 7}}}
        }}}}}}
    });
    let spec = |index: ContractIndex| index.apis()[0].clone();
    let index = ContractIndex::new(vec![spec(pets()), api_contract(&other, "weather")]);
    let forecast = call(
        "POST",
        "https://weather.test/forecast",
        &[],
        Some(r#"{"days": 9}"#),
    );
    assert_eq!(
        index.check_call(&forecast, Some(0), None).status,
        CallStatus::OtherHost
    );
    let unscoped = index.check_call(&forecast, None, None);
    assert_eq!(unscoped.status, CallStatus::Valid);
    assert_eq!(
        unscoped.body_valid,
        Some(false),
        "3.1 schemas are JSON Schema 2020-12: maximum applies"
    );
    assert_eq!(index.api_of_spec("weather"), Some(1));
}

#[test]
fn a_relative_server_accepts_any_host() {
    let spec = json!({
        "openapi": "3.0.0",
        "info": {"title": "Local"},
        "servers": [{"url": "/api"}],
        "paths": {"/items/{id}.json": {"get": {}}}
    });
    let index = ContractIndex::new(vec![api_contract(&spec, "local")]);
    let check = index.check_call(
        &call("GET", "http://localhost:8080/api/items/3.json", &[], None),
        None,
        None,
    );
    assert_eq!(check.operation.as_deref(), Some("GET /items/{id}.json"));
    let wrong_suffix = index.check_call(
        &call("GET", "http://localhost/api/items/3.xml", &[], None),
        None,
        None,
    );
    assert_eq!(wrong_suffix.status, CallStatus::UnknownPath);
}

/// The snippets ingest renders from a spec, in all ten languages, call their own operation:
/// every reader and the resolution agree with the snippet generator.
#[test]
fn every_rendered_reference_snippet_checks_as_its_own_operation() {
    let spec = json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets"},
        "servers": [{"url": "https://api.pets.test/v1"}],
        "components": {
            "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "schemas": {"Pet": {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "example": "Rex"}, "age": {"type": "integer", "example": 3}}}}
        },
        "security": [{"key": []}],
        "paths": {
            "/pets": {
                "get": {"parameters": [{"name": "status", "in": "query", "required": true, "schema": {"type": "string"}, "example": "sold"}]},
                "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
            },
            "/pets/{petId}": {
                "parameters": [{"name": "petId", "in": "path", "schema": {"type": "integer"}, "example": 7}],
                "delete": {"parameters": [{"name": "X-Request-Id", "in": "header", "required": true, "schema": {"type": "string"}}]}
            }
        }
    });
    let index = ContractIndex::new(vec![api_contract(&spec, "pets")]);
    let langs: Vec<String> = apitune_data::TARGET_LANGS
        .iter()
        .map(|l| l.to_string())
        .collect();
    let mut checked = 0;
    apitune_data::openapi::spec_records(&spec, "pets", &langs, &mut |record| {
        let (method, path) = record.endpoint();
        let reference = index.find_operation(0, method, path);
        assert!(reference.is_some(), "{method} {path}");
        let check = index.check(&record.code, &record.lang, Some(0), reference);
        let context = format!(
            "{} {method} {path}:\n{}\n{check:?}",
            record.lang, record.code
        );
        assert_eq!(check.status, CallStatus::Valid, "{context}");
        assert_eq!(check.same_operation, Some(true), "{context}");
        assert_eq!(check.params_complete, Some(true), "{context}");
        assert_eq!(check.params_known, Some(true), "{context}");
        if method == "POST" {
            assert_eq!(check.body_valid, Some(true), "{context}");
        }
        checked += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(checked, 3 * langs.len());
}
