//! What an API accepts, as a spec declares it: per operation the method, path template, server
//! URLs, parameters (with where they go and whether they are required), the query/header names its
//! security schemes add, and the JSON request body schema. Generated calls are checked against it
//! (`apitune-metrics`' grounded checks); ingest stores one per spec so evaluation can do so
//! without the spec file.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::operation::{merged_parameters, operation_servers, text};
use super::refs::Resolver;

/// One API's operations and the schemas their bodies refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiContract {
    /// The spec's path relative to its source root, without extension (records' `spec_id`).
    pub spec_id: String,
    /// `info.title`.
    pub api_name: String,
    /// `openapi` version field (`3.0.3`, `3.1.0`): 3.0 schemas are draft-4 style, 3.1 are 2020-12.
    pub openapi: String,
    pub operations: Vec<OperationContract>,
    /// `components` of the document, which body schemas' `$ref`s point into.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub components: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationContract {
    /// Upper case.
    pub method: String,
    /// Path template as the spec writes it (`/books/{bookId}`).
    pub path: String,
    /// Server URLs with variables set to their defaults (`https://api.x.test/v1`, or relative `/v1`).
    pub servers: Vec<String>,
    pub params: Vec<ParamContract>,
    /// Query parameter names an API-key security scheme of this operation sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_query: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyContract>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamContract {
    pub name: String,
    /// `path`, `query`, `header` or `cookie`.
    #[serde(rename = "in")]
    pub location: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyContract {
    pub required: bool,
    /// The JSON media type's schema, `$ref`s left as written; `None` when the body is not JSON or
    /// declares no schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
}

impl OperationContract {
    /// Parameters of `location` (`query`, `header`, ...).
    pub fn params_in<'a>(&'a self, location: &'a str) -> impl Iterator<Item = &'a ParamContract> {
        self.params.iter().filter(move |p| p.location == location)
    }
}

/// The contract of a loaded OpenAPI 3.x document.
pub fn api_contract(document: &Value, spec_id: &str) -> ApiContract {
    let resolver = Resolver::new(document);
    let api_name = document
        .pointer("/info/title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(spec_id)
        .to_string();
    let openapi = match document.get("openapi") {
        Some(Value::String(v)) => v.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut operations = Vec::new();
    if let Some(paths) = document.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let Some(item) = resolver.resolve(item) else {
                continue;
            };
            let Some(fields) = item.as_object() else {
                continue;
            };
            for (key, op) in fields {
                let method = key.to_ascii_uppercase();
                if !super::operation::is_method(key) || !op.is_object() {
                    continue;
                }
                operations.push(OperationContract {
                    method,
                    path: path.clone(),
                    servers: operation_servers(document, item, op),
                    params: params(&resolver, item, op),
                    security_query: security_query(document, &resolver, op),
                    body: body(&resolver, op),
                });
            }
        }
    }
    ApiContract {
        spec_id: spec_id.to_string(),
        api_name,
        openapi,
        operations,
        components: document.get("components").cloned().unwrap_or(Value::Null),
    }
}

fn params(resolver: &Resolver<'_>, item: &Value, op: &Value) -> Vec<ParamContract> {
    merged_parameters(resolver, item, op)
        .into_iter()
        .filter_map(|param| {
            let name = text(param, "name");
            let location = text(param, "in");
            if name.is_empty() || location.is_empty() {
                return None;
            }
            let required = location == "path"
                || param
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            Some(ParamContract {
                name,
                location,
                required,
            })
        })
        .collect()
}

/// Names of API-key schemes sent in the query by any of the operation's security requirements.
fn security_query(document: &Value, resolver: &Resolver<'_>, op: &Value) -> Vec<String> {
    let requirements = op
        .get("security")
        .or_else(|| document.get("security"))
        .and_then(Value::as_array);
    let schemes = document.pointer("/components/securitySchemes");
    let mut names = Vec::new();
    for requirement in requirements.into_iter().flatten() {
        for scheme_name in requirement.as_object().into_iter().flat_map(Map::keys) {
            let Some(scheme) = schemes
                .and_then(|s| s.get(scheme_name))
                .and_then(|s| resolver.resolve(s))
            else {
                continue;
            };
            if text(scheme, "type") == "apiKey" && text(scheme, "in") == "query" {
                let name = text(scheme, "name");
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

fn body(resolver: &Resolver<'_>, op: &Value) -> Option<BodyContract> {
    let body = resolver.resolve(op.get("requestBody")?)?;
    let required = body
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content = body.get("content").and_then(Value::as_object);
    let json_media = content.and_then(|content| {
        content
            .iter()
            .find(|(media, _)| media.eq_ignore_ascii_case("application/json"))
            .or_else(|| {
                content
                    .iter()
                    .find(|(media, _)| media.to_ascii_lowercase().contains("json"))
            })
    });
    Some(BodyContract {
        required,
        json_schema: json_media.and_then(|(_, media)| media.get("schema").cloned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_params_servers_security_and_body() {
        let spec = json!({
            "openapi": "3.0.3",
            "info": {"title": "Pets"},
            "servers": [{"url": "https://{env}.pets.test/v1", "variables": {"env": {"default": "api"}}}],
            "security": [{"key": []}],
            "components": {
                "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
                "schemas": {"Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}
            },
            "paths": {
                "/pets/{petId}": {
                    "parameters": [{"name": "petId", "in": "path", "schema": {"type": "integer"}}],
                    "get": {"parameters": [{"name": "fields", "in": "query"}, {"name": "X-Trace", "in": "header", "required": true}]},
                    "put": {
                        "servers": [{"url": "https://write.pets.test"}],
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
                    }
                }
            }
        });
        let contract = api_contract(&spec, "pets");
        assert_eq!(contract.api_name, "Pets");
        assert_eq!(contract.openapi, "3.0.3");
        let [get, put] = &contract.operations[..] else {
            panic!("two operations expected: {:?}", contract.operations);
        };
        assert_eq!(
            (get.method.as_str(), get.path.as_str()),
            ("GET", "/pets/{petId}")
        );
        assert_eq!(get.servers, ["https://api.pets.test/v1"]);
        assert_eq!(put.servers, ["https://write.pets.test"]);
        let described: Vec<(&str, &str, bool)> = get
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.location.as_str(), p.required))
            .collect();
        assert_eq!(
            described,
            [
                ("petId", "path", true),
                ("fields", "query", false),
                ("X-Trace", "header", true)
            ]
        );
        assert_eq!(get.security_query, ["api_key"]);
        assert_eq!(get.body, None);
        let body = put.body.as_ref().expect("a body");
        assert!(body.required);
        assert_eq!(
            body.json_schema,
            Some(json!({"$ref": "#/components/schemas/Pet"}))
        );
        assert!(contract.components.get("schemas").is_some());
    }
}
