//! Ruby snippets, read with tree-sitter-ruby: `Net::HTTP::Post.new(url)` with `url = URI("...")`,
//! then `request["Name"] = "value"` and `request.body = "..."` on the same variable, the shape
//! httpsnippet renders; also `Net::HTTP.get(URI(...))` and `Net::HTTP.post(uri, body, headers)`.
//!
//! Names bound by assignments are followed to their values. A body given as a hash literal with
//! `.to_json` or `JSON.generate` is written as compact JSON.

use serde_json::{Map, Value};
use tree_sitter::Node;

use super::literal::{Unknown, strip_quotes, unescape, unescape_single_quoted};
use super::tree::{self, arguments, text};
use super::{Bindings, CallParts, HttpCall, json_text};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("ruby", tree_sitter_ruby::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let ruby = Ruby {
        code,
        bindings: bindings(&nodes, code),
        nodes: &nodes,
    };
    nodes
        .iter()
        .filter(|node| node.kind() == "call")
        .find_map(|&call| ruby.request_new(call).or_else(|| ruby.shortcut(call)))?
        .finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes.iter().filter(|n| n.kind() == "assignment") {
        if let (Some(name), Some(value)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) && name.kind() == "identifier"
        {
            bindings.bind(text(name, code), value.start_byte(), value);
        }
    }
    bindings
}

/// Names and groups that values are followed through.
const TRANSPARENT: tree::Transparent = tree::Transparent {
    names: &["identifier"],
    groups: &["parenthesized_statements"],
};

struct Ruby<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
    nodes: &'c [Node<'t>],
}

impl<'t> Ruby<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    fn method_name(&self, call: Node) -> Option<&str> {
        Some(self.text(call.child_by_field_name("method")?))
    }

    /// `Net::HTTP::Verb.new(url, headers)`, with what later statements set on the variable it is
    /// assigned to.
    fn request_new(&self, call: Node<'t>) -> Option<CallParts> {
        if self.method_name(call)? != "new" {
            return None;
        }
        let class = call.child_by_field_name("receiver")?;
        let scope = class.child_by_field_name("scope")?;
        if class.kind() != "scope_resolution" || self.text(scope) != "Net::HTTP" {
            return None;
        }
        let verb = self.text(class.child_by_field_name("name")?);
        let args = arguments(call);
        let mut parts = CallParts {
            method: Some(verb.to_string()),
            url: Some(self.url(*args.first()?)),
            ..CallParts::default()
        };
        for initheader in args.iter().skip(1) {
            parts.headers.extend(self.pairs(*initheader));
        }
        let assignment = call.parent().filter(|p| p.kind() == "assignment");
        let variable = assignment
            .and_then(|a| a.child_by_field_name("left"))
            .map(|v| self.text(v));
        if let Some(variable) = variable {
            self.settings(variable, &mut parts);
        }
        Some(parts)
    }

    /// `request["Name"] = value`, `request.body = ...`, `request.content_type = ...` and
    /// `request.add_field(name, value)` on `variable`.
    fn settings(&self, variable: &str, parts: &mut CallParts) {
        for node in self.nodes {
            match node.kind() {
                "assignment" => {
                    let (Some(left), Some(right)) = (
                        node.child_by_field_name("left"),
                        node.child_by_field_name("right"),
                    ) else {
                        continue;
                    };
                    let object = left
                        .child_by_field_name("object")
                        .or_else(|| left.child_by_field_name("receiver"));
                    if object.is_none_or(|o| self.text(o) != variable) {
                        continue;
                    }
                    match (left.kind(), self.method_name(left)) {
                        ("element_reference", _) => {
                            let key = tree::named_children(left).get(1).copied();
                            if let Some(name) = key.and_then(|k| self.string(k)) {
                                parts.header(name, &self.scalar(right));
                            }
                        }
                        ("call", Some("body")) => parts.body = self.body(right),
                        ("call", Some("content_type")) => {
                            parts.header("Content-Type", &self.scalar(right))
                        }
                        _ => {}
                    }
                }
                "call" if self.method_name(*node) == Some("add_field") => {
                    let receiver = node.child_by_field_name("receiver");
                    if receiver.is_some_and(|r| self.text(r) == variable)
                        && let [name, value, ..] = arguments(*node).as_slice()
                        && let Some(name) = self.string(*name)
                    {
                        parts.header(name, &self.scalar(*value));
                    }
                }
                _ => {}
            }
        }
    }

    /// `Net::HTTP.get(uri)` and `Net::HTTP.post(uri, body, headers)`.
    fn shortcut(&self, call: Node<'t>) -> Option<CallParts> {
        let receiver = call.child_by_field_name("receiver")?;
        if self.text(receiver) != "Net::HTTP" {
            return None;
        }
        let args = arguments(call);
        let mut parts = CallParts {
            url: Some(self.url(*args.first()?)),
            ..CallParts::default()
        };
        match self.method_name(call)? {
            "get" | "get_response" => parts.method = Some("GET".into()),
            "post" => {
                parts.method = Some("POST".into());
                parts.body = args.get(1).and_then(|body| self.body(*body));
                parts.headers = args.get(2).map_or_else(Vec::new, |h| self.pairs(*h));
            }
            _ => return None,
        }
        Some(parts)
    }

    /// A URL: `URI("...")`, `URI.parse("...")`, a string, or `#{expr}`.
    fn url(&self, node: Node<'t>) -> String {
        let resolved = self.resolve(node);
        let wrapped = (resolved.kind() == "call")
            .then(|| arguments(resolved).first().and_then(|s| self.string(*s)))
            .flatten();
        wrapped
            .or_else(|| self.string(resolved))
            .unwrap_or_else(|| format!("#{{{}}}", self.text(node)))
    }

    fn resolve(&self, node: Node<'t>) -> Node<'t> {
        tree::resolve(node, self.code, &self.bindings, &TRANSPARENT)
    }

    /// A string literal's value: escapes decoded in double quotes, `#{expr}` kept as written.
    fn string(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        if node.kind() != "string" {
            return None;
        }
        let literal = self.text(node);
        Some(if literal.starts_with('"') {
            unescape(strip_quotes(literal, "\"", "\""), Unknown::Drop)
        } else if literal.starts_with('\'') {
            unescape_single_quoted(strip_quotes(literal, "'", "'"))
        } else {
            // `%q(...)` and friends: their content as written.
            tree::named_children(node)
                .iter()
                .map(|part| self.text(*part))
                .collect()
        })
    }

    fn scalar(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| self.text(self.resolve(node)).to_string())
    }

    /// `(name, value)` pairs of a hash literal (or of bare `name => value` arguments).
    fn pairs(&self, node: Node<'t>) -> Vec<(String, String)> {
        let node = self.resolve(node);
        let entries = match node.kind() {
            "hash" => tree::named_children(node),
            "pair" => vec![node],
            _ => return Vec::new(),
        };
        entries
            .into_iter()
            .filter_map(|pair| {
                let key = self.key(pair.child_by_field_name("key")?)?;
                Some((key, self.scalar(pair.child_by_field_name("value")?)))
            })
            .collect()
    }

    fn key(&self, key: Node<'t>) -> Option<String> {
        match key.kind() {
            "hash_key_symbol" | "integer" => Some(self.text(key).to_string()),
            "simple_symbol" => Some(self.text(key).trim_start_matches(':').to_string()),
            _ => self.string(key),
        }
    }

    /// A body: `nil` is none; `hash.to_json` or `JSON.generate(hash)` of a literal is compact
    /// JSON; a string its value; anything else as written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        match node.kind() {
            "nil" => return None,
            "call" => {
                let literal = match self.method_name(node) {
                    Some("to_json") => node.child_by_field_name("receiver"),
                    Some("generate" | "dump")
                        if node
                            .child_by_field_name("receiver")
                            .is_some_and(|r| self.text(r) == "JSON") =>
                    {
                        arguments(node).first().copied()
                    }
                    _ => None,
                };
                if let Some(json) = literal.and_then(|l| self.json(l, 0)) {
                    return Some(json_text(&json));
                }
            }
            _ => {}
        }
        Some(self.scalar(node))
    }

    fn json(&self, node: Node<'t>, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        let node = self.resolve(node);
        Some(match node.kind() {
            "hash" => {
                let mut map = Map::new();
                for pair in tree::named_children(node) {
                    let key = self.key(pair.child_by_field_name("key")?)?;
                    map.insert(
                        key,
                        self.json(pair.child_by_field_name("value")?, depth + 1)?,
                    );
                }
                Value::Object(map)
            }
            "array" => Value::Array(
                tree::named_children(node)
                    .into_iter()
                    .map(|item| self.json(item, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            "string" => Value::String(self.string(node)?),
            "integer" => Value::from(self.text(node).replace('_', "").parse::<i64>().ok()?),
            "float" => serde_json::Number::from_f64(self.text(node).replace('_', "").parse().ok()?)
                .map(Value::Number)?,
            "unary" => match tree::named_children(node).as_slice() {
                [operand] if self.text(node).starts_with('-') => {
                    match self.json(*operand, depth + 1)? {
                        Value::Number(n) if n.is_i64() => Value::from(-n.as_i64()?),
                        Value::Number(n) => {
                            serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)?
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            },
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "nil" => Value::Null,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_net_http_shape() {
        assert_reads_httpsnippet_shapes("ruby");
    }

    #[test]
    fn initheader_hash_body_and_interpolation() {
        let code = "require 'json'\nuri = URI.parse(\"#{BASE}/pets?x=1\")\nreq = Net::HTTP::Patch.new(uri, 'Content-Type' => 'application/json')\nreq['X-Key'] = \"k\\\"ey\"\nreq.add_field 'A', 'b'\nreq.body = { name: 'Rex', 'tags' => [1, -2.5, true, nil] }.to_json\nother['Z'] = 'no'\n";
        let call = parse_call("ruby", code).unwrap();
        assert_eq!(call.method, "PATCH");
        assert_eq!(call.url, "#{BASE}/pets");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(
            call.headers,
            pairs(&[
                ("Content-Type", "application/json"),
                ("X-Key", "k\"ey"),
                ("A", "b")
            ])
        );
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"name":"Rex","tags":[1,-2.5,true,null]}"#)
        );
    }

    #[test]
    fn net_http_shortcuts_and_no_call() {
        let get = parse_call("ruby", "puts Net::HTTP.get(URI('https://h.test/a'))").unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "https://h.test/a")
        );
        let post = parse_call(
            "ruby",
            "Net::HTTP.post(URI('https://h.test/a'), 'x=1', { 'A' => 'b' })",
        )
        .unwrap();
        assert_eq!(post.method, "POST");
        assert_eq!(post.body.as_deref(), Some("x=1"));
        assert_eq!(post.headers, pairs(&[("A", "b")]));
        assert_eq!(parse_call("ruby", "puts 'hello'"), None);
        assert_eq!(parse_call("ruby", "Foo::Bar.new(1)"), None);
    }
}
