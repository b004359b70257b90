//! API Pack's call-level metrics (Guo et al., 2024) plus endpoint checks built on the same
//! extraction:
//!
//! - **endpoint match**: the URL extracted from prediction and reference (per-language patterns
//!   for the httpsnippet shapes API Pack ships) has `difflib` ratio > 0.9, with
//!   `SequenceMatcher(None, pred_url, gold_url)`.
//! - **API-call match**: endpoint match *and* the whole snippets' ratio > 0.9 (the paper's
//!   "additionally the whole call"; our reading is that both must hold).
//! - **method+path match**: same HTTP method and the same path, where a `{placeholder}` segment
//!   (or its `%7B..%7D` encoding) in the reference matches any concrete segment.
//! - **host match**: same host, case-insensitive.
//! - **hallucinated endpoint**: the predicted (method, path) matches no endpoint of the API.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::difflib;

/// API Pack's similarity threshold.
pub const MATCH_THRESHOLD: f64 = 0.9;

/// The snippet families API Pack's `lang` labels name, after `trim().to_lowercase()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnippetLang {
    Curl,
    Python,
    Java,
    Go,
    /// Browser `XMLHttpRequest` (API Pack's `javascript` / `javascript xhr`).
    JavaScript,
    /// Node.js `request` (API Pack's `node`).
    Node,
    Ruby,
    Php,
    Swift,
    Libcurl,
}

impl SnippetLang {
    /// Parses an API Pack `lang` label (`cURL`, `Python`, `javascript xhr`, `Node`, ...).
    pub fn from_label(label: &str) -> Option<Self> {
        let l = label.trim().to_lowercase();
        Some(match l.as_str() {
            "curl" | "shell" | "bash" | "sh" => Self::Curl,
            "python" | "python3" | "py" => Self::Python,
            "java" | "java okhttp" | "okhttp" => Self::Java,
            "go" | "golang" => Self::Go,
            "javascript" | "javascript xhr" | "js" | "xhr" => Self::JavaScript,
            "node" | "nodejs" | "node.js" | "node request" => Self::Node,
            "ruby" | "rb" => Self::Ruby,
            "php" => Self::Php,
            "swift" => Self::Swift,
            "libcurl" | "c" | "c libcurl" => Self::Libcurl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Curl => "curl",
            Self::Python => "python",
            Self::Java => "java",
            Self::Go => "go",
            Self::JavaScript => "javascript",
            Self::Node => "node",
            Self::Ruby => "ruby",
            Self::Php => "php",
            Self::Swift => "swift",
            Self::Libcurl => "libcurl",
        }
    }

    pub const ALL: [SnippetLang; 10] = [
        Self::Curl,
        Self::Python,
        Self::Java,
        Self::Go,
        Self::JavaScript,
        Self::Node,
        Self::Ruby,
        Self::Php,
        Self::Swift,
        Self::Libcurl,
    ];
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern compiles")
}

/// A quoted string literal's body in group 1 (single or double quotes, no escapes inside).
const Q: &str = r#"["']([^"'\s]*)["']"#;

static CURL_URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"--url\s+(?:'([^']*)'|"([^"]*)"|([^\s'"\\]+))"#));
static PY_HOST: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"HTTPS?Connection\(\s*{Q}")));
static PY_REQUEST: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\.request\(\s*["']([A-Za-z]+)["']\s*,\s*f?["']([^"']*)["']"#));
static PY_REQUESTS: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"requests\.(get|post|put|delete|patch|head|options)\(\s*f?["']([^"']*)["']"#)
});
static JAVA_URL: LazyLock<Regex> = LazyLock::new(|| re(r#"\.url\(\s*"([^"]*)"\s*\)"#));
static GO_URL: LazyLock<Regex> = LazyLock::new(|| re(r#"\burl\s*:=\s*"([^"]*)""#));
static GO_NEW_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"http\.NewRequest(?:WithContext)?\((?:[^,]*,\s*)?"([A-Za-z]+)"\s*,\s*(?:"([^"]*)"|\w+)"#)
});
static NODE_URL: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"\burl\s*:\s*{Q}")));
static NODE_HOSTNAME: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r#"["']?hostname["']?\s*:\s*{Q}"#)));
static NODE_PATH: LazyLock<Regex> = LazyLock::new(|| re(&format!(r#"["']?path["']?\s*:\s*{Q}"#)));
static XHR_OPEN: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\.open\(\s*["']([A-Za-z]+)["']\s*,\s*["']([^"']*)["']"#));
static RUBY_URL: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"URI(?:\.parse)?\(\s*{Q}\s*\)")));
static PHP_URL: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"CURLOPT_URL\s*=>\s*{Q}")));
static PHP_SET_URL: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"setUrl\(\s*{Q}\s*\)")));
static SWIFT_URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:NSURL|URL)\(\s*string:\s*"([^"]*)"\s*\)"#));
static LIBCURL_URL: LazyLock<Regex> = LazyLock::new(|| re(r#"CURLOPT_URL\s*,\s*"([^"]*)""#));
/// Last resort in every language: the first absolute URL, including RapidAPI's `https//` form.
static ANY_URL: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)\bhttps?:?//[^\s'"`<>\\)]+"#));

static CURL_METHOD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:^|\s)(?:--request|-X)\s*['"]?([A-Za-z]+)"#));
static CURL_DATA: LazyLock<Regex> = LazyLock::new(|| re(r"(?:^|\s)(?:--data\S*|-d|--form|-F)\s"));
static JAVA_METHOD: LazyLock<Regex> = LazyLock::new(|| re(r#"\.method\(\s*"([A-Za-z]+)""#));
static JAVA_VERB: LazyLock<Regex> =
    LazyLock::new(|| re(r"\.(get|post|put|delete|patch|head)\(\s*[\w)]"));
static NODE_METHOD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"["']?method["']?\s*:\s*["']([A-Za-z]+)["']"#));
static RUBY_METHOD: LazyLock<Regex> =
    LazyLock::new(|| re(r"Net::HTTP::(Get|Post|Put|Delete|Patch|Head|Options)\b"));
static PHP_METHOD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"CURLOPT_CUSTOMREQUEST\s*=>\s*["']([A-Za-z]+)["']"#));
static PHP_HTTP_METH: LazyLock<Regex> = LazyLock::new(|| re(r"HTTP_METH_([A-Z]+)"));
static SWIFT_METHOD: LazyLock<Regex> = LazyLock::new(|| re(r#"httpMethod\s*=\s*"([A-Za-z]+)""#));
static LIBCURL_METHOD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"CURLOPT_CUSTOMREQUEST\s*,\s*"([A-Za-z]+)""#));

fn group<'t>(re: &Regex, text: &'t str, idx: usize) -> Option<&'t str> {
    re.captures(text)
        .and_then(|c| c.get(idx))
        .map(|m| m.as_str())
}

/// The request URL a snippet calls, as written (no normalisation), by the pattern of its
/// language and then the first absolute URL. For Python's `http.client` and Node's native
/// `http` shapes, which split host and path, this is `host + path` without a scheme.
pub fn extract_url(code: &str, lang: SnippetLang) -> Option<String> {
    let specific = match lang {
        SnippetLang::Curl => CURL_URL
            .captures(code)
            .and_then(|c| c.get(1).or(c.get(2)).or(c.get(3)))
            .map(|m| m.as_str().to_owned()),
        SnippetLang::Python => match (group(&PY_HOST, code, 1), group(&PY_REQUEST, code, 2)) {
            (Some(host), Some(path)) => Some(format!("{host}{path}")),
            _ => group(&PY_REQUESTS, code, 2).map(str::to_owned),
        },
        SnippetLang::Java => group(&JAVA_URL, code, 1).map(str::to_owned),
        SnippetLang::Go => group(&GO_URL, code, 1)
            .or_else(|| group(&GO_NEW_REQUEST, code, 2))
            .map(str::to_owned),
        SnippetLang::Node => group(&NODE_URL, code, 1).map(str::to_owned).or_else(|| {
            Some(format!(
                "{}{}",
                group(&NODE_HOSTNAME, code, 1)?,
                group(&NODE_PATH, code, 1)?
            ))
        }),
        SnippetLang::JavaScript => group(&XHR_OPEN, code, 2).map(str::to_owned),
        SnippetLang::Ruby => group(&RUBY_URL, code, 1).map(str::to_owned),
        SnippetLang::Php => group(&PHP_URL, code, 1)
            .or_else(|| group(&PHP_SET_URL, code, 1))
            .map(str::to_owned),
        SnippetLang::Swift => group(&SWIFT_URL, code, 1).map(str::to_owned),
        SnippetLang::Libcurl => group(&LIBCURL_URL, code, 1).map(str::to_owned),
    };
    specific
        .filter(|u| !u.is_empty())
        .or_else(|| ANY_URL.find(code).map(|m| m.as_str().to_owned()))
}

/// The HTTP method (upper case). Where the snippet's library defaults to GET and says nothing
/// (curl without a body, OkHttp, PHP cURL, libcurl), that default is returned once a URL is present.
pub fn extract_method(code: &str, lang: SnippetLang) -> Option<String> {
    let explicit = match lang {
        SnippetLang::Curl => group(&CURL_METHOD, code, 1),
        SnippetLang::Python => group(&PY_REQUEST, code, 1).or_else(|| group(&PY_REQUESTS, code, 1)),
        SnippetLang::Java => group(&JAVA_METHOD, code, 1).or_else(|| group(&JAVA_VERB, code, 1)),
        SnippetLang::Go => group(&GO_NEW_REQUEST, code, 1),
        SnippetLang::Node => group(&NODE_METHOD, code, 1),
        SnippetLang::JavaScript => group(&XHR_OPEN, code, 1),
        SnippetLang::Ruby => group(&RUBY_METHOD, code, 1),
        SnippetLang::Php => group(&PHP_METHOD, code, 1).or_else(|| group(&PHP_HTTP_METH, code, 1)),
        SnippetLang::Swift => group(&SWIFT_METHOD, code, 1),
        SnippetLang::Libcurl => group(&LIBCURL_METHOD, code, 1),
    };
    if let Some(m) = explicit {
        return Some(m.to_ascii_uppercase());
    }
    let has_url = extract_url(code, lang).is_some();
    match lang {
        SnippetLang::Curl if has_url => Some(
            if CURL_DATA.is_match(code) {
                "POST"
            } else {
                "GET"
            }
            .to_owned(),
        ),
        SnippetLang::Java
        | SnippetLang::Php
        | SnippetLang::Libcurl
        | SnippetLang::Node
        | SnippetLang::Swift
            if has_url =>
        {
            Some("GET".to_owned())
        }
        _ => None,
    }
}

/// A URL split into host and path (query and fragment dropped, `%7B`/`%7D` decoded to braces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlParts {
    pub host: Option<String>,
    pub path: String,
}

/// Splits a URL as written in a snippet: an optional scheme (also RapidAPI's broken `https//`),
/// then host up to the first `/`, `?` or `#`. A URL starting with `/` has no host.
pub fn split_url(url: &str) -> UrlParts {
    let url = url.trim();
    let rest = match url.find("//") {
        Some(i)
            if url[..i]
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == ':') =>
        {
            &url[i + 2..]
        }
        _ => url,
    };
    let (host, path_and_more) = if rest.starts_with('/') {
        (None, rest)
    } else {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        (Some(rest[..end].to_ascii_lowercase()), &rest[end..])
    };
    let path_end = path_and_more
        .find(['?', '#'])
        .unwrap_or(path_and_more.len());
    let mut path = decode_braces(&path_and_more[..path_end]);
    if path.is_empty() {
        path.push('/');
    }
    UrlParts {
        host: host.filter(|h| !h.is_empty()),
        path,
    }
}

fn decode_braces(s: &str) -> String {
    s.replace("%7B", "{")
        .replace("%7b", "{")
        .replace("%7D", "}")
        .replace("%7d", "}")
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Whether one concrete path segment fits one template segment, where `{name}` parts match one
/// or more characters (`file.{ext}` matches `file.json`).
fn segment_matches(template: &str, concrete: &str) -> bool {
    if !template.contains('{') {
        return template == concrete;
    }
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        pieces.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    pieces.push(rest);
    // `pieces` are the literals around the placeholders: text = lit0 P lit1 P ... litk.
    concrete
        .strip_prefix(pieces[0])
        .is_some_and(|rest| fits_after_placeholder(&pieces[1..], rest))
}

/// Matches `text` against `P lit (P lit)*` where each `P` is a non-empty placeholder.
fn fits_after_placeholder(literals: &[&str], text: &str) -> bool {
    let Some((lit, more)) = literals.split_first() else {
        return text.is_empty();
    };
    text.char_indices()
        .skip(1)
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .filter(|&i| i > 0)
        .any(|i| {
            text[i..].strip_prefix(lit).is_some_and(|after| {
                if more.is_empty() {
                    after.is_empty()
                } else {
                    fits_after_placeholder(more, after)
                }
            })
        })
}

/// Whether a concrete path is an instance of a template path, matched on the template's trailing
/// segments so that a server base path (`/v1`) before the operation path is allowed.
pub fn path_matches_template(concrete: &str, template: &str) -> bool {
    let (concrete, template) = (decode_braces(concrete), decode_braces(template));
    let (c, t) = (segments(&concrete), segments(&template));
    if t.len() > c.len() || (t.is_empty() && !c.is_empty()) {
        return false;
    }
    let offset = c.len() - t.len();
    t.iter()
        .zip(&c[offset..])
        .all(|(t, c)| segment_matches(t, c))
}

/// One operation of an API: method and OpenAPI path template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
}

/// The operations an API defines, for the hallucinated-endpoint check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSet {
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSet {
    pub fn new(
        endpoints: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        Self {
            endpoints: endpoints
                .into_iter()
                .map(|(m, p)| Endpoint {
                    method: m.into().to_ascii_uppercase(),
                    path: p.into(),
                })
                .collect(),
        }
    }

    /// Whether some operation has this method (any, when `None`) and a template the path fits.
    pub fn contains(&self, method: Option<&str>, concrete_path: &str) -> bool {
        self.endpoints.iter().any(|e| {
            method.is_none_or(|m| m.eq_ignore_ascii_case(&e.method))
                && path_matches_template(concrete_path, &e.path)
        })
    }
}

/// A snippet's call as far as it can be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedCall {
    pub url: String,
    pub method: Option<String>,
    pub host: Option<String>,
    pub path: String,
}

pub fn extract_call(code: &str, lang: SnippetLang) -> Option<ExtractedCall> {
    let url = extract_url(code, lang)?;
    let UrlParts { host, path } = split_url(&url);
    Some(ExtractedCall {
        method: extract_method(code, lang),
        host,
        path,
        url,
    })
}

/// Per-example API metrics. `None` where the reference has no extractable URL (the metric does
/// not apply), or, for `hallucinated`, where no endpoint set was given or the prediction has no
/// readable endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiMatch {
    pub endpoint_match: Option<bool>,
    pub api_call_match: Option<bool>,
    pub method_path_match: Option<bool>,
    pub host_match: Option<bool>,
    pub hallucinated: Option<bool>,
    /// `difflib` ratio of the extracted URLs (0 when the prediction has none).
    pub url_ratio: Option<f64>,
}

/// All API metrics of one prediction against its reference snippet.
pub fn api_match(
    prediction: &str,
    reference: &str,
    lang: SnippetLang,
    known: Option<&EndpointSet>,
) -> ApiMatch {
    let pred = extract_call(prediction, lang);
    let hallucinated = match (known, &pred) {
        (Some(set), Some(p)) => Some(!set.contains(p.method.as_deref(), &p.path)),
        _ => None,
    };
    let Some(gold) = extract_call(reference, lang) else {
        return ApiMatch {
            hallucinated,
            ..Default::default()
        };
    };
    let url_ratio = pred
        .as_ref()
        .map_or(0.0, |p| difflib::ratio(&p.url, &gold.url));
    let endpoint_match = url_ratio > MATCH_THRESHOLD;
    let api_call_match = endpoint_match && difflib::ratio(prediction, reference) > MATCH_THRESHOLD;
    let method_path_match = pred.as_ref().is_some_and(|p| {
        p.method.is_some()
            && p.method == gold.method
            && path_matches_template(&p.path, &gold.path)
            && segments(&p.path).len() == segments(&gold.path).len()
    });
    let host_match = pred
        .as_ref()
        .is_some_and(|p| p.host.is_some() && p.host == gold.host);
    ApiMatch {
        endpoint_match: Some(endpoint_match),
        api_call_match: Some(api_call_match),
        method_path_match: Some(method_path_match),
        host_match: Some(host_match),
        hallucinated,
        url_ratio: Some(url_ratio),
    }
}
