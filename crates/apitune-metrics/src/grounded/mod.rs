//! Spec-grounded call checks: the HTTP call a snippet makes (see [`crate::call`]) resolved against
//! the API's OpenAPI operations, instead of compared as text with one reference.
//!
//! A call resolves to an operation when a server URL of the operation matches the call's host and
//! base path, the rest of the path matches the operation's path template segment by segment, and
//! the method is the operation's. Of the operations a call matches, the one with the most literal
//! segments wins (`/books/search` before `/books/{id}`). Per call:
//! - `call_valid`: it resolves to an operation; otherwise the reason is `other_host`,
//!   `unknown_path` or `wrong_method` (the furthest step it got to);
//! - `params_complete`: every required query, header and cookie parameter is sent (path
//!   parameters are filled by the path match);
//! - `params_known`: every query parameter sent is declared (an API-key scheme's query name
//!   counts as declared);
//! - `body_valid`: the body is JSON and validates against the operation's JSON request schema
//!   (a missing body is valid only when the body is optional);
//! - `same_operation`: the resolved operation is the reference's.
//!
//! A snippet from which no call can be read (unparseable, truncated, a language without a reader)
//! is `unchecked`: it counts against `call_valid` and `same_operation`, never for them. The
//! parameter and body checks apply to valid calls only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use apitune_data::openapi::{ApiContract, OperationContract};

use super::call::{HttpCall, parse_call};

/// Body validation errors kept per call.
const MAX_BODY_ERRORS: usize = 3;

/// An operation of a [`ContractIndex`]: (API, operation) positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OperationRef {
    pub api: usize,
    pub operation: usize,
}

/// Why a call did not resolve, the furthest step first matched.
/// Ordered by how far a call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// No call could be read from the snippet.
    Unchecked,
    /// No server of the API has the call's host.
    OtherHost,
    /// The host matches, no path template does.
    UnknownPath,
    /// Host and path match operations, none with the call's method.
    WrongMethod,
    Valid,
}

/// The verdicts for one snippet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallCheck {
    pub status: CallStatus,
    /// `METHOD /path/template` of the resolved operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    pub call_valid: bool,
    /// Of valid calls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_complete: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_params: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_known: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_params: Vec<String>,
    /// Of valid calls whose operation declares a JSON request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_errors: Vec<String>,
    /// When the reference's operation is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_operation: Option<bool>,
}

/// One path-template segment.
#[derive(Debug)]
enum Segment {
    Literal(String),
    /// `{id}`: any non-empty segment.
    Any,
    /// `{name}.json`, `v{version}`: literal parts around parameters.
    Pattern(Regex),
}

#[derive(Debug)]
struct Server {
    /// Lower case, default port dropped; `None` for a relative server URL (any host).
    host: Option<String>,
    base: Vec<String>,
}

#[derive(Debug)]
struct CompiledOperation {
    servers: Vec<Server>,
    template: Vec<Segment>,
    literal_segments: usize,
}

/// Validators are built on first use, one per operation; `None` when the schema does not compile.
type ValidatorCache = Mutex<HashMap<OperationRef, Option<Arc<jsonschema::Validator>>>>;

/// Contracts of one or more APIs, with their path templates compiled for resolving calls.
pub struct ContractIndex {
    apis: Vec<ApiContract>,
    compiled: Vec<Vec<CompiledOperation>>,
    by_spec_id: HashMap<String, usize>,
    validators: ValidatorCache,
}

impl ContractIndex {
    pub fn new(apis: Vec<ApiContract>) -> Self {
        let compiled = apis
            .iter()
            .map(|api| api.operations.iter().map(compile).collect())
            .collect();
        let by_spec_id = apis
            .iter()
            .enumerate()
            .map(|(i, api)| (api.spec_id.clone(), i))
            .collect();
        Self {
            apis,
            compiled,
            by_spec_id,
            validators: Mutex::new(HashMap::new()),
        }
    }

    pub fn apis(&self) -> &[ApiContract] {
        &self.apis
    }

    pub fn is_empty(&self) -> bool {
        self.apis.is_empty()
    }

    /// The API whose `spec_id` this is.
    pub fn api_of_spec(&self, spec_id: &str) -> Option<usize> {
        self.by_spec_id.get(spec_id).copied()
    }

    pub fn operation(&self, at: OperationRef) -> &OperationContract {
        &self.apis[at.api].operations[at.operation]
    }

    /// The operation of API `api` with exactly this method and path template.
    pub fn find_operation(&self, api: usize, method: &str, path: &str) -> Option<OperationRef> {
        let operations = &self.apis.get(api)?.operations;
        operations
            .iter()
            .position(|op| op.method.eq_ignore_ascii_case(method) && op.path == path)
            .map(|operation| OperationRef { api, operation })
    }

    /// The operation `call` makes, among API `scope`'s operations or, without a scope, all.
    pub fn resolve(
        &self,
        call: &HttpCall,
        scope: Option<usize>,
    ) -> Result<OperationRef, CallStatus> {
        let (host, path) = split_url(&call.url);
        let mut furthest = CallStatus::OtherHost;
        let mut best: Option<(usize, OperationRef)> = None;
        let apis: Vec<usize> = match scope {
            Some(api) if api < self.apis.len() => vec![api],
            Some(_) => Vec::new(),
            None => (0..self.apis.len()).collect(),
        };
        for api in apis {
            for (operation, compiled) in self.compiled[api].iter().enumerate() {
                let step = match_operation(compiled, host.as_deref(), &path);
                if step < CallStatus::WrongMethod {
                    furthest = furthest.max(step);
                    continue;
                }
                let contract = &self.apis[api].operations[operation];
                if !contract.method.eq_ignore_ascii_case(&call.method) {
                    furthest = furthest.max(CallStatus::WrongMethod);
                    continue;
                }
                let candidate = (compiled.literal_segments, OperationRef { api, operation });
                if best.is_none_or(|(literals, _)| candidate.0 > literals) {
                    best = Some(candidate);
                }
            }
        }
        best.map(|(_, at)| at).ok_or(furthest)
    }

    /// Every verdict for `snippet` in `lang` (a canonical label: curl, python, javascript, ...).
    pub fn check(
        &self,
        snippet: &str,
        lang: &str,
        scope: Option<usize>,
        reference: Option<OperationRef>,
    ) -> CallCheck {
        match parse_call(lang, snippet) {
            Some(call) => self.check_call(&call, scope, reference),
            None => CallCheck {
                status: CallStatus::Unchecked,
                operation: None,
                call_valid: false,
                params_complete: None,
                missing_params: Vec::new(),
                params_known: None,
                unknown_params: Vec::new(),
                body_valid: None,
                body_errors: Vec::new(),
                same_operation: reference.map(|_| false),
            },
        }
    }

    /// Every verdict for an already read call.
    pub fn check_call(
        &self,
        call: &HttpCall,
        scope: Option<usize>,
        reference: Option<OperationRef>,
    ) -> CallCheck {
        let resolved = self.resolve(call, scope);
        let mut check = CallCheck {
            status: resolved.err().unwrap_or(CallStatus::Valid),
            operation: None,
            call_valid: resolved.is_ok(),
            params_complete: None,
            missing_params: Vec::new(),
            params_known: None,
            unknown_params: Vec::new(),
            body_valid: None,
            body_errors: Vec::new(),
            same_operation: reference.map(|r| resolved == Ok(r)),
        };
        let Ok(at) = resolved else {
            return check;
        };
        let op = self.operation(at);
        check.operation = Some(format!("{} {}", op.method, op.path));
        check.missing_params = missing_params(op, call);
        check.params_complete = Some(check.missing_params.is_empty());
        check.unknown_params = unknown_params(op, call);
        check.params_known = Some(check.unknown_params.is_empty());
        if let Some(body) = &op.body
            && body.json_schema.is_some()
        {
            let errors = match &call.body {
                None if body.required => vec!["the operation requires a JSON body".to_string()],
                None => Vec::new(),
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Err(_) => vec!["the body is not JSON".to_string()],
                    Ok(value) => match self.validator(at) {
                        Some(validator) => validator
                            .iter_errors(&value)
                            .take(MAX_BODY_ERRORS)
                            .map(|e| format!("{}: {e}", e.instance_path()))
                            .collect(),
                        // A schema the validator cannot compile cannot be checked.
                        None => return check,
                    },
                },
            };
            check.body_valid = Some(errors.is_empty());
            check.body_errors = errors;
        }
        check
    }

    fn validator(&self, at: OperationRef) -> Option<Arc<jsonschema::Validator>> {
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(at)
            .or_insert_with(|| {
                let api = &self.apis[at.api];
                let schema = api.operations[at.operation]
                    .body
                    .as_ref()?
                    .json_schema
                    .clone()?;
                // The schema's `$ref`s point into the spec (`#/components/schemas/Pet`): the root
                // holds the components, and refers to the body schema placed beside them.
                let root = json!({
                    "$ref": "#/x-apitune-body",
                    "x-apitune-body": schema,
                    "components": api.components,
                });
                let draft = if api.openapi.starts_with("3.1") {
                    jsonschema::Draft::Draft202012
                } else {
                    jsonschema::Draft::Draft4
                };
                jsonschema::options()
                    .with_draft(draft)
                    .build(&root)
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }
}

fn compile(op: &OperationContract) -> CompiledOperation {
    let template: Vec<Segment> = segments(&op.path)
        .into_iter()
        .map(|segment| compile_segment(&segment))
        .collect();
    let literal_segments = template
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count();
    let servers = op
        .servers
        .iter()
        .map(|url| {
            let (host, base) = split_url(url);
            Server { host, base }
        })
        .collect();
    CompiledOperation {
        servers,
        template,
        literal_segments,
    }
}

fn compile_segment(segment: &str) -> Segment {
    if !segment.contains('{') {
        return Segment::Literal(segment.to_string());
    }
    if segment.starts_with('{') && segment.ends_with('}') && segment.matches('{').count() == 1 {
        return Segment::Any;
    }
    let mut pattern = String::from("^");
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        pattern.push_str(&regex::escape(&rest[..open]));
        match rest[open..].find('}') {
            Some(close) => {
                pattern.push_str(".+?");
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Regex::new(&pattern).map_or_else(|_| Segment::Literal(segment.to_string()), Segment::Pattern)
}

/// How far `call` gets against `op`: `WrongMethod` means host and path match.
fn match_operation(op: &CompiledOperation, host: Option<&str>, path: &[String]) -> CallStatus {
    let mut furthest = CallStatus::OtherHost;
    for server in &op.servers {
        let host_matches = match (&server.host, host) {
            (Some(server_host), Some(host)) => server_host == host,
            // A relative server URL names no host; a relative call names none to compare.
            _ => true,
        };
        if !host_matches {
            continue;
        }
        furthest = CallStatus::UnknownPath;
        let Some(rest) = path.strip_prefix(server.base.as_slice()) else {
            continue;
        };
        if rest.len() == op.template.len()
            && rest
                .iter()
                .zip(&op.template)
                .all(|(s, t)| segment_matches(t, s))
        {
            return CallStatus::WrongMethod;
        }
    }
    furthest
}

fn segment_matches(template: &Segment, segment: &str) -> bool {
    match template {
        Segment::Literal(literal) => literal == segment,
        Segment::Any => !segment.is_empty(),
        Segment::Pattern(regex) => regex.is_match(segment),
    }
}

/// (host, path segments) of an absolute or relative URL; host lower case without a default
/// port, path segments percent-decoded.
fn split_url(url: &str) -> (Option<String>, Vec<String>) {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let authority = authority.rsplit('@').next().unwrap_or(authority);
            let default_port = if scheme.eq_ignore_ascii_case("http") {
                ":80"
            } else {
                ":443"
            };
            let host = authority.to_ascii_lowercase();
            let host = host.strip_suffix(default_port).unwrap_or(&host).to_string();
            (Some(host), path)
        }
        None => (None, url),
    };
    (host, segments(path))
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Required query, header and cookie parameters the call does not send, as `in:name`.
fn missing_params(op: &OperationContract, call: &HttpCall) -> Vec<String> {
    let sent_query: Vec<String> = call.query.iter().map(|(n, _)| percent_decode(n)).collect();
    let has_header = |name: &str| {
        call.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let has_cookie = |name: &str| {
        call.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .any(|pair| pair.trim().split('=').next() == Some(name))
    };
    op.params
        .iter()
        .filter(|p| p.required)
        .filter(|p| match p.location.as_str() {
            "query" => !sent_query.contains(&p.name),
            // OpenAPI: these header parameters are ignored (content negotiation, security).
            "header" if is_reserved_header(&p.name) => false,
            "header" => !has_header(&p.name),
            "cookie" => !has_cookie(&p.name),
            _ => false,
        })
        .map(|p| format!("{}:{}", p.location, p.name))
        .collect()
}

fn is_reserved_header(name: &str) -> bool {
    ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str())
}

/// Query parameters the call sends that the operation does not declare.
fn unknown_params(op: &OperationContract, call: &HttpCall) -> Vec<String> {
    let mut unknown = Vec::new();
    for (name, _) in &call.query {
        let name = percent_decode(name);
        let declared =
            op.params_in("query").any(|p| p.name == name) || op.security_query.contains(&name);
        if !declared && !unknown.contains(&name) {
            unknown.push(name);
        }
    }
    unknown
}

#[cfg(test)]
mod tests;
