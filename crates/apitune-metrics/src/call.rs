//! The HTTP call a generated snippet makes, read out of its syntax tree: method, URL (split into
//! base and query), headers and body, for checking against an API's OpenAPI operations.
//!
//! curl command lines are read with the tree-sitter bash grammar the syntax metric already uses:
//! the first `curl` command's arguments, with `-X`/`--request`, `-H`/`--header`,
//! `-d`/`--data`/`--data-raw`/`--data-binary`/`--json`, `--url` and a bare URL. Quoting is
//! resolved as the shell would for literal strings; a snippet whose call holds shell expansions
//! (`$TOKEN`) keeps them as written.

use tree_sitter::{Node, Parser};

/// One HTTP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Upper case: `GET` unless the snippet names one, `POST` when it sends a body without one.
    pub method: String,
    /// Scheme, host and path, without the query.
    pub url: String,
    /// Query parameters in order, as written (not percent-decoded).
    pub query: Vec<(String, String)>,
    /// Header names as written, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// The call of the first `curl` command in `code`, or `None` when there is none or it names no
/// URL.
pub fn parse_curl(code: &str) -> Option<HttpCall> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_bash::LANGUAGE.into())
        .ok()?;
    let tree = parser.parse(code, None)?;
    let command = first_curl(tree.root_node(), code)?;
    let mut cursor = command.walk();
    let words: Vec<String> = command
        .children_by_field_name("argument", &mut cursor)
        .map(|arg| shell_word(arg, code))
        .collect();
    curl_call(&words)
}

/// The first `command` node whose name is `curl`, depth first.
fn first_curl<'t>(node: Node<'t>, code: &str) -> Option<Node<'t>> {
    if node.kind() == "command" {
        let name = node.child_by_field_name("name")?;
        if &code[name.byte_range()] == "curl" {
            return Some(node);
        }
    }
    let mut cursor = node.walk();
    node.children(&mut cursor)
        .find_map(|child| first_curl(child, code))
}

/// An argument as the shell passes it: quotes removed, the escapes of double quotes resolved,
/// expansions kept as written.
fn shell_word(node: Node, code: &str) -> String {
    let text = &code[node.byte_range()];
    match node.kind() {
        "raw_string" => text.trim_matches('\'').to_string(),
        "string" => unescape_double_quoted(&text[1..text.len().saturating_sub(1).max(1)]),
        "concatenation" => {
            let mut cursor = node.walk();
            node.children(&mut cursor)
                .map(|part| shell_word(part, code))
                .collect()
        }
        _ => text.replace("\\\n", ""),
    }
}

/// Inside double quotes a backslash escapes only `$`, `` ` ``, `"`, `\` and a newline.
fn unescape_double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('$' | '`' | '"' | '\\')) => out.extend(chars.next()),
            ('\\', Some('\n')) => {
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The call described by curl's arguments.
fn curl_call(words: &[String]) -> Option<HttpCall> {
    let (mut method, mut url, mut headers, mut body) = (None, None, Vec::new(), None);
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-X" | "--request" => method = words.next().map(|m| m.to_ascii_uppercase()),
            "-H" | "--header" => {
                if let Some((name, value)) = words.next().and_then(|h| h.split_once(':')) {
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-ascii" | "--json" => {
                body = words.next().cloned();
            }
            "--url" => url = words.next().cloned(),
            flag if flag.starts_with("-X") && flag.len() > 2 => {
                method = Some(flag[2..].to_ascii_uppercase());
            }
            flag if flag.starts_with('-') => {}
            bare if url.is_none() && bare.contains("://") => url = Some(bare.to_string()),
            _ => {}
        }
    }
    let url = url?;
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let (base, query) = split_query(&url);
    Some(HttpCall {
        method,
        url: base,
        query,
        headers,
        body,
    })
}

/// `url` without its query and fragment, and the query's parameters.
fn split_query(url: &str) -> (String, Vec<(String, String)>) {
    let url = url.split('#').next().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// httpsnippet's curl shape, as API Pack records have it.
    #[test]
    fn reads_method_url_query_headers_and_body_of_httpsnippet_curl() {
        let code = "curl --request POST \\\n  --url 'https://api.example.com/v2/pets?limit=10&tag=a%20b' \\\n  --header 'Content-Type: application/json' \\\n  --header 'X-Api-Key: REPLACE_KEY_VALUE' \\\n  --data '{\"name\":\"Rex\",\"age\":3}'";
        let call = parse_curl(code).expect("a call");
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://api.example.com/v2/pets");
        assert_eq!(call.query, pairs(&[("limit", "10"), ("tag", "a%20b")]));
        assert_eq!(
            call.headers,
            pairs(&[
                ("Content-Type", "application/json"),
                ("X-Api-Key", "REPLACE_KEY_VALUE")
            ])
        );
        assert_eq!(call.body.as_deref(), Some("{\"name\":\"Rex\",\"age\":3}"));
    }

    #[test]
    fn short_flags_double_quotes_and_a_bare_url() {
        let code = "curl -X delete \"https://api.example.com/pets/42\" -H \"Authorization: Bearer \\$TOKEN\"";
        let call = parse_curl(code).expect("a call");
        assert_eq!(call.method, "DELETE");
        assert_eq!(call.url, "https://api.example.com/pets/42");
        assert!(call.query.is_empty());
        assert_eq!(call.headers, pairs(&[("Authorization", "Bearer $TOKEN")]));
        assert_eq!(call.body, None);
    }

    #[test]
    fn a_body_without_a_method_is_a_post_and_no_method_is_a_get() {
        let post = parse_curl("curl https://h.example/items -d 'a=1'").unwrap();
        assert_eq!(
            (post.method.as_str(), post.body.as_deref()),
            ("POST", Some("a=1"))
        );
        let get = parse_curl("curl https://h.example/items?x").unwrap();
        assert_eq!(get.method, "GET");
        assert_eq!(get.query, pairs(&[("x", "")]));
    }

    #[test]
    fn the_first_curl_command_counts_even_after_other_commands() {
        let code = "export TOKEN=abc\ncurl -XPUT --url https://h.example/a/b --data-raw \"{}\"\ncurl https://other.example/";
        let call = parse_curl(code).unwrap();
        assert_eq!(
            (call.method.as_str(), call.url.as_str()),
            ("PUT", "https://h.example/a/b")
        );
        assert_eq!(call.body.as_deref(), Some("{}"));
    }

    #[test]
    fn no_curl_or_no_url_is_no_call() {
        assert_eq!(parse_curl("echo hello"), None);
        assert_eq!(parse_curl("curl --request GET"), None);
        assert_eq!(
            parse_curl("OkHttpClient client = new OkHttpClient();"),
            None
        );
    }
}
