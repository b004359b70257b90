//! curl command lines, read with the tree-sitter bash grammar the syntax metric already uses:
//! the first `curl` command's arguments, with `-X`/`--request`, `-H`/`--header`,
//! `-d`/`--data`/`--data-raw`/`--data-binary`/`--json`, `--url` and a bare URL. Quoting is
//! resolved as the shell would for literal strings; a snippet whose call holds shell expansions
//! (`$TOKEN`) keeps them as written.

use tree_sitter::Node;

use super::literal::strip_quotes;
use super::tree::{self, text};
use super::{CallParts, HttpCall};

/// The call of the first `curl` command in `code`, or `None` when there is none or it names no
/// URL.
pub fn parse_curl(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("bash", tree_sitter_bash::LANGUAGE, code)?;
    let command = tree::descendants(tree.root_node())
        .into_iter()
        .find(|node| is_curl(*node, code))?;
    let mut cursor = command.walk();
    let words: Vec<String> = command
        .children_by_field_name("argument", &mut cursor)
        .map(|arg| shell_word(arg, code))
        .collect();
    curl_call(&words)
}

fn is_curl(node: Node, code: &str) -> bool {
    node.kind() == "command"
        && node
            .child_by_field_name("name")
            .is_some_and(|name| text(name, code) == "curl")
}

/// An argument as the shell passes it: quotes removed, the escapes of double quotes resolved,
/// expansions kept as written.
fn shell_word(node: Node, code: &str) -> String {
    let word = text(node, code);
    match node.kind() {
        "raw_string" => word.trim_matches('\'').to_string(),
        "string" => unescape_double_quoted(strip_quotes(word, "\"", "\"")),
        "concatenation" => {
            let mut cursor = node.walk();
            node.children(&mut cursor)
                .map(|part| shell_word(part, code))
                .collect()
        }
        _ => unescape_unquoted(word),
    }
}

/// Unquoted, a backslash makes the next character literal (`\'` in `'it'\''s'`), and a
/// backslash-newline joins lines.
fn unescape_unquoted(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(escaped) => out.push(escaped),
            },
            _ => out.push(c),
        }
    }
    out
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
    let mut call = CallParts::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-X" | "--request" => call.method = words.next().cloned(),
            "-H" | "--header" => call.header_line(words.next().map_or("", String::as_str)),
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-ascii" | "--json" => {
                call.body = words.next().cloned();
            }
            "--url" => call.url = words.next().cloned(),
            flag if flag.len() > 2 && flag.starts_with("-X") => {
                call.method = flag.get(2..).map(str::to_string);
            }
            flag if flag.starts_with('-') => {}
            bare if call.url.is_none() && bare.contains("://") => call.url = Some(bare.to_string()),
            _ => {}
        }
    }
    call.finish()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};
    use super::*;

    #[test]
    fn reads_httpsnippets_curl_shape() {
        assert_reads_httpsnippet_shapes("curl");
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
