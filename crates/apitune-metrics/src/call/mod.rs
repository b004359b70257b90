//! The HTTP call a generated snippet makes, read out of its syntax tree: method, URL (split into
//! base and query), headers and body, for checking against an API's OpenAPI operations.
//!
//! One reader per language family, each at least for the shape httpsnippet renders for it
//! (`apitune-data`'s `openapi::snippets`), since that is the shape the fine-tuned model learns:
//!
//! | lang | file | shapes |
//! |---|---|---|
//! | curl | `curl.rs` | the first `curl` command |
//! | python | `python.rs` | `http.client`; `requests` / `httpx`, module, `Session` or `Client` |
//! | javascript, node | `javascript.rs` | `fetch`, `XMLHttpRequest`, `axios`; node also `request` |
//! | go | `go.rs` | `http.NewRequest` + `req.Header.Add`; `http.Get` / `Head` / `Post` |
//! | java | `java.rs` | OkHttp, `java.net.http` and Unirest builder chains |
//! | ruby | `ruby.rs` | `Net::HTTP::Verb.new(URI(...))` + `request[...] =`; `Net::HTTP.get/post` |
//! | php | `php.rs` | `curl_setopt_array` / `curl_setopt` / `curl_init`; Guzzle |
//! | swift | `swift.rs` | `(NS)(Mutable)URLRequest(url: (NS)URL(string:))`; a bare `URL(string:)` |
//! | libcurl | `libcurl.rs` | `curl_easy_setopt` + `curl_slist_append` |
//!
//! Every reader follows simple bindings (`x = "..."` and the like) to the values they name.
//! Model outputs are often truncated or slightly wrong, so readers work on error-tolerant trees
//! and answer `None`, never panic, when they find no call with a URL.
//!
//! Values are written as the snippet means them: string escapes decoded the way the language
//! does; a body given as a literal object (a Python dict, a JS object, a PHP array, a Ruby hash,
//! a Swift dictionary), or serialized from one (`JSON.stringify`, `json.dumps`, `json_encode`,
//! `to_json`, `JSONSerialization`), as compact JSON so a JSON Schema validator can check it, form
//! fields included; anything that cannot be evaluated (a name bound elsewhere, a call) as its
//! source text. A part of a URL or string that cannot be evaluated is kept as a placeholder in
//! the language's own interpolation syntax (`{expr}` in Python, `${expr}` in JavaScript, `#{expr}`
//! in Ruby, `\(expr)` in Swift) and as `{expr}` in languages without one (Go, Java, PHP, C), the
//! way a template's placeholder is kept.

mod curl;
mod go;
mod java;
mod javascript;
mod libcurl;
mod literal;
mod php;
mod python;
mod ruby;
mod swift;
mod tree;

pub use curl::parse_curl;

/// One HTTP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Upper case: `GET` unless the snippet names one, `POST` when it sends a body without one.
    pub method: String,
    /// Scheme, host and path, without the query.
    pub url: String,
    /// Query parameters in order, as written (not percent-decoded): the URL's own, then those
    /// passed separately (`params=`, `qs:`).
    pub query: Vec<(String, String)>,
    /// Header names as written, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// The call in `code`, a snippet in the canonical language `lang` (`curl`, `python`,
/// `javascript`, `node`, `go`, `java`, `ruby`, `php`, `swift`, `libcurl`); `None` for another
/// language or when no call with a URL is found.
pub fn parse_call(lang: &str, code: &str) -> Option<HttpCall> {
    match lang {
        "curl" => parse_curl(code),
        "python" => python::parse(code),
        "javascript" => javascript::parse(code, javascript::Runtime::Browser),
        "node" => javascript::parse(code, javascript::Runtime::Node),
        "go" => go::parse(code),
        "java" => java::parse(code),
        "ruby" => ruby::parse(code),
        "php" => php::parse(code),
        "swift" => swift::parse(code),
        "libcurl" => libcurl::parse(code),
        _ => None,
    }
}

/// What a reader found, before the defaults are applied.
#[derive(Debug, Default)]
struct CallParts {
    method: Option<String>,
    url: Option<String>,
    /// Parameters passed apart from the URL; they follow the URL's own.
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl CallParts {
    /// The call, or `None` without a URL. The method defaults as curl's does.
    fn finish(self) -> Option<HttpCall> {
        let url = self.url?;
        let method = self
            .method
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| if self.body.is_some() { "POST" } else { "GET" }.into());
        let (base, mut query) = split_query(&url);
        query.extend(self.query);
        Some(HttpCall {
            method,
            url: base,
            query,
            headers: self.headers,
            body: self.body,
        })
    }

    fn header(&mut self, name: impl Into<String>, value: &str) {
        self.headers.push((name.into(), value.trim().to_string()));
    }

    /// A `Name: value` line, as curl, PHP's and libcurl's header lists write them.
    fn header_line(&mut self, line: &str) {
        if let Some((name, value)) = line.split_once(':') {
            self.header(name.trim(), value);
        }
    }
}

/// How many bindings a value is followed through (`a = b`, `b = "..."`); it also ends cycles.
const MAX_DEPTH: usize = 8;

/// Names bound to values, with where each binding is (`x = ...`, `const x = ...`).
struct Bindings<V> {
    entries: Vec<(String, usize, V)>,
}

impl<V> Default for Bindings<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V: Copy> Bindings<V> {
    fn bind(&mut self, name: &str, at: usize, value: V) {
        self.entries.push((name.to_string(), at, value));
    }

    /// The value `name` holds at offset `at`: its last binding before `at`, or, for a name used
    /// before it is bound (a function defined above the assignment it reads), its first.
    fn lookup(&self, name: &str, at: usize) -> Option<V> {
        let mut named = self.entries.iter().filter(|(n, _, _)| n == name);
        let first = named.clone().next().map(|(_, _, value)| *value);
        named
            .rfind(|(_, start, _)| *start < at)
            .map(|(_, _, value)| *value)
            .or(first)
    }
}

/// `url` without its query and fragment, and the query's parameters. A `#{` opens Ruby's
/// interpolation, kept as written, not a fragment.
fn split_query(url: &str) -> (String, Vec<(String, String)>) {
    let fragment = url
        .match_indices('#')
        .find(|(at, _)| !url[at + 1..].starts_with('{'))
        .map_or(url.len(), |(at, _)| at);
    let url = &url[..fragment];
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    (base.to_string(), params)
}

/// Compact JSON text, the form a body given as a literal object is reported in.
fn json_text(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The method a verb-named function stands for (`requests.post`, `axios.delete`).
fn verb_method(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "get" => "GET",
        "post" => "POST",
        "put" => "PUT",
        "patch" => "PATCH",
        "delete" | "del" => "DELETE",
        "head" => "HEAD",
        "options" => "OPTIONS",
        _ => return None,
    })
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{GOLDEN, LANGS, pairs, truncations};
    use super::*;

    #[test]
    fn split_query_keeps_parameters_as_written() {
        assert_eq!(
            split_query("https://h.example/a?x=1&y=a%20b&z#frag"),
            (
                "https://h.example/a".to_string(),
                pairs(&[("x", "1"), ("y", "a%20b"), ("z", "")])
            )
        );
        assert_eq!(
            split_query("https://h.example/a"),
            ("https://h.example/a".to_string(), vec![])
        );
        assert_eq!(
            split_query("#{base}/a?q=#{x}#top"),
            ("#{base}/a".to_string(), pairs(&[("q", "#{x}")]))
        );
    }

    #[test]
    fn separate_parameters_follow_the_urls_own_and_a_body_defaults_to_post() {
        let call = CallParts {
            url: Some("https://h.example/a?x=1".into()),
            query: pairs(&[("y", "2")]),
            body: Some("{}".into()),
            ..CallParts::default()
        }
        .finish()
        .unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.query, pairs(&[("x", "1"), ("y", "2")]));
        assert_eq!(CallParts::default().finish(), None);
    }

    #[test]
    fn unknown_languages_have_no_reader() {
        assert_eq!(parse_call("kotlin", "curl https://h.example/"), None);
        assert_eq!(parse_call("", ""), None);
    }

    /// Model outputs are cut off anywhere, and in the wrong language: every prefix of every
    /// golden snippet through its reader, every snippet and some garbage through every reader,
    /// must come back without a panic.
    #[test]
    fn no_reader_panics_on_truncated_or_garbage_input() {
        let garbage = [
            "",
            "\\",
            "\"",
            "'",
            "`",
            "{",
            "((((((((((((((((((((",
            "[[[[[[[[[[{{{{{{{{{\"\\u{",
            "\"\\u{110000}\" '\\x' \"\\u12\" \"\\777\"",
            "é漢字🙂\u{0}\u{7f}",
            "<?php",
            "curl",
            "request(",
            "fetch(`${",
            "requests.get(f'{",
            "conn.request(",
            "Net::HTTP::",
            "curl_easy_setopt(",
            "URL(string:",
            "http.NewRequest(",
            "new Request.Builder().url(",
        ];
        for lang in LANGS {
            for code in garbage.iter().chain(GOLDEN.iter().map(|(_, _, code)| code)) {
                let _ = parse_call(lang, code);
            }
        }
        for (lang, prefix) in truncations() {
            let _ = parse_call(lang, prefix);
        }
        for open in ["(", "[", "{", "f'{", "\"${", "a(", "-"] {
            let deep = open.repeat(2_000);
            for lang in LANGS {
                let _ = parse_call(lang, &deep);
            }
        }
    }
}
