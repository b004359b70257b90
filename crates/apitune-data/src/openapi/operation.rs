//! Operations of an OpenAPI document and the request each one stands for: server URL, required
//! parameters, security headers and an example body, with local `$ref`s resolved.

use serde_json::{Map, Value};

use super::refs::{Resolver, schema_type};
use super::request::{Body, HttpRequest};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Header parameters OpenAPI says to ignore (they come from content negotiation and security).
const IGNORED_HEADER_PARAMS: [&str; 3] = ["accept", "content-type", "authorization"];

#[derive(Debug, Clone)]
pub struct Operation {
    pub request: HttpRequest,
    /// Host when the server URL is absolute.
    pub known_host: Option<String>,
    /// Server URL after variable substitution.
    pub base_url: String,
    pub summary: String,
    pub description: String,
    pub operation_id: String,
    /// Short functionality label: summary, else operationId, else "METHOD path".
    pub functionality: String,
    pub tags: Vec<String>,
    /// `(lang label, source)` from `x-code-samples` / `x-codeSamples`.
    pub code_samples: Vec<(String, String)>,
    /// Required parameters and their example values.
    pub arguments: Value,
}

/// All operations in document order (paths in order, methods in the order the path item lists them).
pub fn operations(document: &Value, resolver: &Resolver<'_>) -> Vec<Operation> {
    let Some(paths) = document.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (path, item) in paths {
        let Some(item) = resolver.resolve(item) else {
            continue;
        };
        let Some(item_fields) = item.as_object() else {
            continue;
        };
        for (key, op) in item_fields {
            let method = key.to_ascii_lowercase();
            if !METHODS.contains(&method.as_str()) || !op.is_object() {
                continue;
            }
            out.push(build_operation(document, resolver, path, item, &method, op));
        }
    }
    out
}

pub(super) fn is_method(key: &str) -> bool {
    METHODS.contains(&key.to_ascii_lowercase().as_str())
}

pub(super) fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn build_operation(
    document: &Value,
    resolver: &Resolver<'_>,
    path: &str,
    item: &Value,
    method: &str,
    op: &Value,
) -> Operation {
    let server_url = operation_servers(document, item, op).swap_remove(0);
    let (scheme, host, base_path, known_host) = split_server_url(&server_url);
    let mut request = HttpRequest {
        method: method.to_ascii_uppercase(),
        scheme,
        host,
        base_path,
        path: path.to_string(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
    };
    let mut cookies: Vec<String> = Vec::new();
    let arguments = add_parameters(resolver, (item, op), &mut request, &mut cookies);
    apply_security(document, resolver, op, &mut request, &mut cookies);
    if !cookies.is_empty() {
        request
            .headers
            .push(("cookie".to_string(), cookies.join("; ")));
    }
    request.body = request_body(resolver, op);
    let summary = text(op, "summary");
    let operation_id = text(op, "operationId");
    let functionality = [summary.clone(), operation_id.clone()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{} {}", request.method, path));
    Operation {
        base_url: server_url,
        known_host,
        request,
        description: truncate_text(&text(op, "description"), MAX_DESCRIPTION_CHARS),
        summary,
        operation_id,
        functionality,
        tags: tags(op),
        code_samples: code_samples(resolver, op),
        arguments: Value::Object(arguments),
    }
}

/// Puts the operation's parameters into `request` (query, required headers) and `cookies`:
/// required ones always (an example, or a placeholder), optional ones when they have an example.
/// Returns the required ones by name (the record's `arguments`).
fn add_parameters(
    resolver: &Resolver<'_>,
    (item, op): (&Value, &Value),
    request: &mut HttpRequest,
    cookies: &mut Vec<String>,
) -> Map<String, Value> {
    let mut arguments = Map::new();
    for param in merged_parameters(resolver, item, op) {
        let name = text(param, "name");
        let location = text(param, "in");
        if name.is_empty() {
            continue;
        }
        let required = param
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || location == "path";
        let example = parameter_example(resolver, param);
        let has_example = example.is_some();
        let value = example.unwrap_or_else(|| Value::String(placeholder_for(resolver, param)));
        if required {
            arguments.insert(name.clone(), value.clone());
        }
        if !required && !has_example {
            continue;
        }
        let as_text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match location.as_str() {
            "query" => request.query.push((name, as_text)),
            "header"
                if required
                    && !IGNORED_HEADER_PARAMS.contains(&name.to_ascii_lowercase().as_str()) =>
            {
                request.headers.push((name, as_text))
            }
            "cookie" if required => cookies.push(format!("{name}={as_text}")),
            _ => {}
        }
    }
    arguments
}

fn tags(op: &Value) -> Vec<String> {
    op.get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The operation's `x-code-samples` / `x-codeSamples` as (lang, source).
fn code_samples(resolver: &Resolver<'_>, op: &Value) -> Vec<(String, String)> {
    ["x-code-samples", "x-codeSamples"]
        .iter()
        .filter_map(|key| op.get(*key).and_then(Value::as_array))
        .flatten()
        .filter_map(|sample| {
            let sample = resolver.resolve(sample)?;
            let lang = sample.get("lang").and_then(Value::as_str)?;
            let source = sample.get("source").and_then(Value::as_str)?;
            Some((lang.to_string(), source.to_string()))
        })
        .collect()
}

/// The operation's server URLs, variables set to their defaults: the innermost `servers` list
/// wins (operation, then path item, then document); `/` when none declares any.
pub(super) fn operation_servers(document: &Value, item: &Value, op: &Value) -> Vec<String> {
    let servers: Vec<String> = [
        op.get("servers"),
        item.get("servers"),
        document.get("servers"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_array)
    .find(|list| !list.is_empty())
    .map(|list| list.iter().map(substitute_server_variables).collect())
    .unwrap_or_default();
    if servers.is_empty() {
        vec!["/".to_string()]
    } else {
        servers
    }
}

fn substitute_server_variables(server: &Value) -> String {
    let mut url = text(server, "url");
    if let Some(variables) = server.get("variables").and_then(Value::as_object) {
        for (name, variable) in variables {
            let value = variable
                .get("default")
                .and_then(Value::as_str)
                .or_else(|| {
                    variable
                        .get("enum")
                        .and_then(Value::as_array)
                        .and_then(|e| e.first())
                        .and_then(Value::as_str)
                })
                .unwrap_or(name);
            url = url.replace(&format!("{{{name}}}"), value);
        }
    }
    if url.is_empty() { "/".to_string() } else { url }
}

/// (scheme, host, base path, host if the URL was absolute). A relative server URL (`/v1`) gets
/// the placeholder host `localhost`, and no known host.
fn split_server_url(url: &str) -> (String, String, String, Option<String>) {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        ("https", Some(rest))
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http", Some(rest))
    } else if let Some(rest) = url.strip_prefix("//") {
        ("https", Some(rest))
    } else {
        ("https", None)
    };
    match rest {
        Some(rest) => {
            let (host, path) = match rest.find('/') {
                Some(slash) => (&rest[..slash], &rest[slash..]),
                None => (rest, ""),
            };
            let host = host.to_ascii_lowercase();
            (
                scheme.to_string(),
                host.clone(),
                path.trim_end_matches('/').to_string(),
                Some(host),
            )
        }
        None => {
            let path = if url.starts_with('/') {
                url.to_string()
            } else {
                format!("/{url}")
            };
            (
                scheme.to_string(),
                "localhost".to_string(),
                path.trim_end_matches('/').to_string(),
                None,
            )
        }
    }
}

/// Path-item parameters overridden by operation parameters with the same (name, in).
pub(super) fn merged_parameters<'a>(
    resolver: &Resolver<'a>,
    item: &'a Value,
    op: &'a Value,
) -> Vec<&'a Value> {
    let mut merged: Vec<&'a Value> = Vec::new();
    for source in [item.get("parameters"), op.get("parameters")]
        .into_iter()
        .flatten()
    {
        let Some(list) = source.as_array() else {
            continue;
        };
        for param in list {
            let Some(param) = resolver.resolve(param) else {
                continue;
            };
            let key = (text(param, "name"), text(param, "in"));
            merged.retain(|existing| (text(existing, "name"), text(existing, "in")) != key);
            merged.push(param);
        }
    }
    merged
}

fn parameter_example(resolver: &Resolver<'_>, param: &Value) -> Option<Value> {
    if let Some(example) = param.get("example") {
        return Some(example.clone());
    }
    if let Some(first) = param
        .get("examples")
        .and_then(Value::as_object)
        .and_then(|e| e.values().next())
        && let Some(value) = resolver.resolve(first).and_then(|e| e.get("value"))
    {
        return Some(value.clone());
    }
    let schema = resolver.resolve(param.get("schema")?)?;
    let first_of = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|list| list.first())
            .cloned()
    };
    // 3.1 schemas list `examples`; 3.0 ones have a single `example`.
    schema
        .get("example")
        .cloned()
        .or_else(|| first_of("examples"))
        .or_else(|| schema.get("default").cloned())
        .or_else(|| first_of("enum"))
}

/// openapi-snippet's placeholder for a parameter without an example: `SOME_<TYPE>_VALUE`.
fn placeholder_for(resolver: &Resolver<'_>, param: &Value) -> String {
    let kind = param
        .get("schema")
        .and_then(|schema| resolver.resolve(schema))
        .and_then(schema_type)
        .unwrap_or_else(|| "string".to_string());
    format!("SOME_{}_VALUE", kind.to_ascii_uppercase())
}

fn apply_security(
    document: &Value,
    resolver: &Resolver<'_>,
    op: &Value,
    request: &mut HttpRequest,
    cookies: &mut Vec<String>,
) {
    let requirements = op
        .get("security")
        .or_else(|| document.get("security"))
        .and_then(Value::as_array);
    let Some(requirement) = requirements
        .and_then(|r| r.first())
        .and_then(Value::as_object)
    else {
        return;
    };
    let schemes = document.pointer("/components/securitySchemes");
    for name in requirement.keys() {
        let Some(scheme) = schemes
            .and_then(|s| s.get(name))
            .and_then(|s| resolver.resolve(s))
        else {
            continue;
        };
        let kind = text(scheme, "type");
        match kind.as_str() {
            "apiKey" => {
                let key_name = text(scheme, "name");
                let value = "REPLACE_KEY_VALUE".to_string();
                match text(scheme, "in").as_str() {
                    "query" => request.query.push((key_name, value)),
                    "cookie" => cookies.push(format!("{key_name}={value}")),
                    _ => request.headers.push((key_name, value)),
                }
            }
            "http" => {
                let auth = text(scheme, "scheme").to_ascii_lowercase();
                let value = match auth.as_str() {
                    "basic" => "Basic REPLACE_BASIC_AUTH".to_string(),
                    "bearer" | "" => "Bearer REPLACE_BEARER_TOKEN".to_string(),
                    other => format!(
                        "{} REPLACE_{}_TOKEN",
                        capitalise(other),
                        other.to_ascii_uppercase()
                    ),
                };
                request.headers.push(("Authorization".to_string(), value));
            }
            "oauth2" | "openIdConnect" => {
                request.headers.push((
                    "Authorization".to_string(),
                    "Bearer REPLACE_BEARER_TOKEN".to_string(),
                ));
            }
            _ => {}
        }
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn request_body(resolver: &Resolver<'_>, op: &Value) -> Option<Body> {
    let body = resolver.resolve(op.get("requestBody")?)?;
    let content = body.get("content")?.as_object()?;
    let pick = |predicate: &dyn Fn(&str) -> bool| {
        content
            .iter()
            .find(|(media, _)| predicate(&media.to_ascii_lowercase()))
    };
    let (media_type, media) = pick(&|m| m == "application/json")
        .or_else(|| pick(&|m| m.contains("json")))
        .or_else(|| pick(&|m| m == "application/x-www-form-urlencoded"))
        .or_else(|| content.iter().next())?;
    let example = media
        .get("example")
        .cloned()
        .or_else(|| {
            let first = media.get("examples")?.as_object()?.values().next()?;
            resolver.resolve(first)?.get("value").cloned()
        })
        .or_else(|| {
            media
                .get("schema")
                .map(|schema| resolver.example_for_schema(schema))
        })?;
    let lowered = media_type.to_ascii_lowercase();
    if lowered.contains("json") {
        let text = serde_json::to_string(&example).ok()?;
        return Some(Body {
            media_type: media_type.clone(),
            text,
            json: Some(example),
        });
    }
    if lowered == "application/x-www-form-urlencoded" {
        let fields = example.as_object()?;
        let text = fields
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!(
                    "{}={}",
                    super::request::encode_component(name),
                    super::request::encode_component(&value)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        return Some(Body {
            media_type: media_type.clone(),
            text,
            json: None,
        });
    }
    // Other media types (XML, text, multipart): only a literal string example can be sent as is.
    let text = example.as_str()?.to_string();
    Some(Body {
        media_type: media_type.clone(),
        text,
        json: None,
    })
}

/// Longest operation description kept: some specs embed whole manuals in descriptions, and the
/// text is copied into every record and prompt.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// `text` cut to at most `max` characters at a word boundary, with "..." when cut.
pub fn truncate_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    match cut.rfind(char::is_whitespace) {
        Some(space) if space > 0 => format!("{}...", cut[..space].trim_end()),
        _ => format!("{cut}..."),
    }
}

fn first_sentence(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let sentence = match line.find(". ") {
        Some(end) => &line[..end + 1],
        None => line,
    };
    truncate_text(sentence, 200)
}

/// `listBooksByAuthor` / `list_books-by_author` -> `List books by author`.
fn humanise_identifier(identifier: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in identifier.chars() {
        if c == '_' || c == '-' || c == '.' || c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    capitalise(&words.join(" "))
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.clone().next()) {
        // Keep acronyms ("SMS", "URL") as they are.
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            first.to_lowercase().collect::<String>() + chars.as_str()
        }
        _ => text.to_string(),
    }
}

impl Operation {
    /// (instruction, instruction_test): two deterministic phrasings of what the operation does.
    /// The training one starts from the summary; the test one from the description's first
    /// sentence when it says something else, and is always worded differently.
    pub fn phrasings(&self, api_name: &str) -> (String, String) {
        let api_label = if api_name.to_ascii_lowercase().ends_with("api") {
            format!("the {api_name}")
        } else {
            format!("the {api_name} API")
        };
        let description_sentence = first_sentence(&self.description);
        let primary = [
            self.summary.clone(),
            description_sentence.clone(),
            humanise_identifier(&self.operation_id),
        ]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("Call {} {}", self.request.method, self.request.path));
        let primary = primary.trim().trim_end_matches('.').trim().to_string();
        let instruction = format!("{primary} using {api_label}.");
        let secondary = description_sentence
            .trim()
            .trim_end_matches('.')
            .trim()
            .to_string();
        let instruction_test = if !secondary.is_empty() && !secondary.eq_ignore_ascii_case(&primary)
        {
            format!("I need to call {api_label}: {secondary}.")
        } else {
            // Summaries are verb phrases ("List books") as often as noun phrases ("A collection
            // of all appointment types"): this wording fits both.
            format!(
                "Show me how to call {api_label} for this: {}.",
                lower_first(&primary)
            )
        };
        (instruction, instruction_test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_sentences() {
        assert_eq!(
            humanise_identifier("listBooksByAuthor"),
            "List books by author"
        );
        assert_eq!(humanise_identifier("get_book-by_id"), "Get book by id");
        assert_eq!(
            first_sentence("Returns books. Newest first.\nMore."),
            "Returns books."
        );
        assert_eq!(lower_first("List books"), "list books");
        assert_eq!(lower_first("SMS send"), "SMS send");
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            split_server_url("https://API.test:8443/v1/"),
            (
                "https".into(),
                "api.test:8443".into(),
                "/v1".into(),
                Some("api.test:8443".into())
            )
        );
        assert_eq!(
            split_server_url("/v2"),
            ("https".into(), "localhost".into(), "/v2".into(), None)
        );
        let server = serde_json::json!({"url": "https://{region}.x.test/{v}", "variables": {"region": {"default": "eu"}, "v": {"enum": ["v3"], "default": "v3"}}});
        assert_eq!(substitute_server_variables(&server), "https://eu.x.test/v3");
    }
}
