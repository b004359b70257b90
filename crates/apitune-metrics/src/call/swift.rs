//! Swift snippets, read with tree-sitter-swift: a `URLRequest` / `NSMutableURLRequest` made from
//! `URL(string: "...")` / `NSURL(string: "...")`, then `httpMethod`, `allHTTPHeaderFields`,
//! `setValue(_:forHTTPHeaderField:)` / `addValue` and `httpBody` on the same variable, the shape
//! httpsnippet renders; failing a request, the first `URL(string:)` is a GET
//! (`URLSession.shared.dataTask(with: url)`).
//!
//! Names bound by `let` / `var` are followed to their values. A body is read through the
//! wrappers around it (`NSData(data: "...".data(using: .utf8)!)`, `postData as Data`), and
//! `JSONSerialization.data(withJSONObject:)` of a dictionary literal is written as compact JSON.

use serde_json::{Map, Value};
use tree_sitter::Node;

use super::literal::{Unknown, strip_quotes, unescape};
use super::tree::{self, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, json_text};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("swift", tree_sitter_swift::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let swift = Swift {
        code,
        bindings: bindings(&nodes, code),
        nodes: &nodes,
    };
    let calls = || nodes.iter().filter(|n| n.kind() == "call_expression");
    calls()
        .find_map(|&call| swift.request(call))
        .or_else(|| {
            calls().find_map(|&call| {
                let url = swift.url_call(call)?;
                Some(CallParts {
                    url: Some(url),
                    ..CallParts::default()
                })
            })
        })?
        .finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes.iter().filter(|n| n.kind() == "property_declaration") {
        if let (Some(name), Some(value)) = (
            node.child_by_field_name("name"),
            node.child_by_field_name("value"),
        ) {
            bindings.bind(text(name, code).trim(), value.start_byte(), value);
        }
    }
    bindings
}

/// The callee of a call (its first child) and its `(label, value)` arguments.
fn call_parts<'t>(call: Node<'t>, code: &str) -> Option<(Node<'t>, Vec<(String, Node<'t>)>)> {
    let callee = call.named_child(0)?;
    let suffix = tree::named_children(call)
        .into_iter()
        .find(|c| c.kind() == "call_suffix")?;
    let arguments = tree::named_children(suffix)
        .into_iter()
        .find(|c| c.kind() == "value_arguments")
        .map(tree::named_children)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|argument| {
            let label = argument
                .child_by_field_name("name")
                .map_or("", |l| text(l, code).trim());
            Some((label.to_string(), argument.child_by_field_name("value")?))
        })
        .collect();
    Some((callee, arguments))
}

struct Swift<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
    nodes: &'c [Node<'t>],
}

impl<'t> Swift<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    /// `(NS)(Mutable)URLRequest(url: ...)`, with what is set on the variable it is bound to.
    fn request(&self, call: Node<'t>) -> Option<CallParts> {
        let (callee, args) = call_parts(call, self.code)?;
        let class = self.text(callee);
        if !matches!(class, "URLRequest" | "NSMutableURLRequest" | "NSURLRequest") {
            return None;
        }
        let (_, url) = args.iter().find(|(label, _)| label == "url")?;
        let url = self.url(*url);
        let mut parts = CallParts {
            url: Some(url),
            ..CallParts::default()
        };
        let declaration = call.parent().filter(|p| p.kind() == "property_declaration");
        let variable = declaration
            .and_then(|d| d.child_by_field_name("name"))
            .map(|n| self.text(n).trim());
        if let Some(variable) = variable {
            self.settings(variable, &mut parts);
        }
        Some(parts)
    }

    fn settings(&self, variable: &str, parts: &mut CallParts) {
        let member = |node: Node| {
            let path: String = self.text(node).split_whitespace().collect();
            path.strip_prefix(variable)
                .and_then(|rest| rest.strip_prefix('.'))
                .map(str::to_string)
        };
        for node in self.nodes {
            match node.kind() {
                "assignment" => {
                    let (Some(target), Some(value)) = (
                        node.child_by_field_name("target"),
                        node.child_by_field_name("result"),
                    ) else {
                        continue;
                    };
                    match member(target).as_deref() {
                        Some("httpMethod") => parts.method = self.string(value),
                        Some("allHTTPHeaderFields") => parts.headers = self.pairs(value),
                        Some("httpBody") => parts.body = self.body(value),
                        _ => {}
                    }
                }
                "call_expression" => {
                    let Some((callee, args)) = call_parts(*node, self.code) else {
                        continue;
                    };
                    if !matches!(member(callee).as_deref(), Some("setValue" | "addValue")) {
                        continue;
                    }
                    let value = args.iter().find(|(label, _)| label.is_empty());
                    let name = args.iter().find(|(label, _)| label == "forHTTPHeaderField");
                    if let (Some((_, value)), Some((_, name))) = (value, name)
                        && let Some(name) = self.string(*name)
                    {
                        parts.header(name, &self.scalar(*value));
                    }
                }
                _ => {}
            }
        }
    }

    /// A URL argument: `URL(string: ...)!` and the like, a string, or `\(expr)`.
    fn url(&self, node: Node<'t>) -> String {
        let inner = self.unwrap(node);
        if inner.kind() == "call_expression"
            && let Some(url) = self.url_call(inner)
        {
            return url;
        }
        self.string(inner)
            .unwrap_or_else(|| format!("\\({})", self.text(node)))
    }

    /// The URL of a `URL(string: ...)` or `NSURL(string: ...)` call.
    fn url_call(&self, call: Node<'t>) -> Option<String> {
        let (callee, args) = call_parts(call, self.code)?;
        if !matches!(self.text(callee), "URL" | "NSURL") {
            return None;
        }
        let (_, url) = args.iter().find(|(label, _)| label == "string")?;
        Some(
            self.string(*url)
                .unwrap_or_else(|| format!("\\({})", self.text(*url))),
        )
    }

    /// `node` without `!`, `as T`, `try` and parentheses, names followed to their values.
    fn unwrap(&self, mut node: Node<'t>) -> Node<'t> {
        for _ in 0..MAX_DEPTH * 4 {
            let inner = match node.kind() {
                "simple_identifier" => self.bindings.lookup(self.text(node), node.start_byte()),
                "postfix_expression" => node.child_by_field_name("target"),
                "as_expression" | "try_expression" => node.child_by_field_name("expr"),
                "tuple_expression" if tree::named_children(node).len() == 1 => node.named_child(0),
                _ => None,
            };
            match inner {
                Some(inner) => node = inner,
                None => break,
            }
        }
        node
    }

    /// A string literal's value: escapes decoded, `\(expr)` kept as written.
    fn string(&self, node: Node<'t>) -> Option<String> {
        let node = self.unwrap(node);
        let literal = self.text(node);
        match node.kind() {
            "line_string_literal" => {
                Some(unescape(strip_quotes(literal, "\"", "\""), Unknown::Keep))
            }
            "multi_line_string_literal" => Some(unescape(
                &multi_line(strip_quotes(literal, "\"\"\"", "\"\"\"")),
                Unknown::Keep,
            )),
            _ => None,
        }
    }

    fn scalar(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| self.text(self.unwrap(node)).to_string())
    }

    fn pairs(&self, node: Node<'t>) -> Vec<(String, String)> {
        let node = self.unwrap(node);
        if node.kind() != "dictionary_literal" {
            return Vec::new();
        }
        let mut keys = node.walk();
        let mut values = node.walk();
        node.children_by_field_name("key", &mut keys)
            .zip(node.children_by_field_name("value", &mut values))
            .map(|(key, value)| (self.scalar(key), self.scalar(value)))
            .collect()
    }

    /// A body: a string, however wrapped into `Data`; `JSONSerialization.data(withJSONObject:)`
    /// of a literal as compact JSON; `nil` none; anything else as written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let mut node = self.unwrap(node);
        for _ in 0..MAX_DEPTH {
            let inner = match node.kind() {
                "nil" => return None,
                // `"...".data(using: .utf8)` and `"...".utf8`.
                "navigation_expression" => node.child_by_field_name("target"),
                "call_expression" => {
                    let (callee, args) = call_parts(node, self.code)?;
                    let callee = self.text(callee);
                    if callee == "JSONSerialization.data" {
                        let (_, object) = args.first()?;
                        return Some(match self.json(*object, 0) {
                            Some(json) => json_text(&json),
                            None => self.text(self.unwrap(*object)).to_string(),
                        });
                    }
                    match (callee, args.first()) {
                        ("NSData" | "Data", Some((_, data))) => Some(*data),
                        (_, _) if callee.ends_with(".data") => tree::named_children(node)
                            .first()
                            .and_then(|n| n.child_by_field_name("target")),
                        _ => None,
                    }
                }
                _ => None,
            };
            match inner {
                Some(inner) if inner != node => node = self.unwrap(inner),
                _ => break,
            }
        }
        Some(self.scalar(node))
    }

    fn json(&self, node: Node<'t>, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        let node = self.unwrap(node);
        Some(match node.kind() {
            "dictionary_literal" => {
                let mut keys = node.walk();
                let mut values = node.walk();
                let mut map = Map::new();
                for (key, value) in node
                    .children_by_field_name("key", &mut keys)
                    .zip(node.children_by_field_name("value", &mut values))
                {
                    map.insert(self.string(key)?, self.json(value, depth + 1)?);
                }
                Value::Object(map)
            }
            "array_literal" => {
                let mut cursor = node.walk();
                Value::Array(
                    node.children_by_field_name("element", &mut cursor)
                        .map(|item| self.json(item, depth + 1))
                        .collect::<Option<_>>()?,
                )
            }
            "line_string_literal" | "multi_line_string_literal" => {
                Value::String(self.string(node)?)
            }
            "integer_literal" => Value::from(self.text(node).replace('_', "").parse::<i64>().ok()?),
            "real_literal" => {
                serde_json::Number::from_f64(self.text(node).replace('_', "").parse().ok()?)
                    .map(Value::Number)?
            }
            "prefix_expression" => {
                let operation = node.child_by_field_name("operation").map(|o| self.text(o));
                match (
                    operation,
                    self.json(node.child_by_field_name("target")?, depth + 1)?,
                ) {
                    (Some("-"), Value::Number(n)) if n.is_i64() => Value::from(-n.as_i64()?),
                    (Some("-"), Value::Number(n)) => {
                        serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)?
                    }
                    _ => return None,
                }
            }
            "boolean_literal" => Value::Bool(self.text(node) == "true"),
            "nil" => Value::Null,
            _ => return None,
        })
    }
}

/// A `"""` literal's content: the line breaks after the opening and before the closing
/// delimiter dropped, and the closing delimiter's indentation removed from every line.
fn multi_line(body: &str) -> String {
    let body = body.split_once('\n').map_or(body, |(_, rest)| rest);
    let (body, indent) = match body.rsplit_once('\n') {
        Some((content, last)) if last.trim().is_empty() => (content, last),
        _ => (body, ""),
    };
    body.split('\n')
        .map(|line| line.strip_prefix(indent).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};
    use super::multi_line;

    #[test]
    fn reads_httpsnippets_nsmutableurlrequest_shape() {
        assert_reads_httpsnippet_shapes("swift");
    }

    #[test]
    fn url_request_with_set_value_and_a_json_serialized_dictionary() {
        let code = "let parameters = [\"name\": \"R\\\"ex\", \"tags\": [1, -2.5, true]] as [String: Any]\nlet url = URL(string: \"https://h.test/pets/\\(id)?x=1\")!\nvar request = URLRequest(url: url)\nrequest.httpMethod = \"PATCH\"\nrequest.setValue(\"application/json\", forHTTPHeaderField: \"Content-Type\")\nrequest.addValue(token, forHTTPHeaderField: \"Authorization\")\nrequest.httpBody = try? JSONSerialization.data(withJSONObject: parameters)\n";
        let call = parse_call("swift", code).unwrap();
        assert_eq!(call.method, "PATCH");
        assert_eq!(call.url, "https://h.test/pets/\\(id)");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(
            call.headers,
            pairs(&[
                ("Content-Type", "application/json"),
                ("Authorization", "token")
            ])
        );
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"name":"R\"ex","tags":[1,-2.5,true]}"#)
        );
    }

    #[test]
    fn a_bare_url_is_a_get_and_a_string_body_through_data() {
        let get = parse_call(
            "swift",
            "let task = URLSession.shared.dataTask(with: URL(string: \"https://h.test/a\")!) { data, _, _ in }",
        )
        .unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "https://h.test/a")
        );
        let post = parse_call(
            "swift",
            "var r = URLRequest(url: URL(string: \"https://h.test/a\")!)\nr.httpMethod = \"POST\"\nr.httpBody = Data(\"a=1\".utf8)",
        )
        .unwrap();
        assert_eq!(post.body.as_deref(), Some("a=1"));
        assert_eq!(parse_call("swift", "print(\"hello\")"), None);
    }

    #[test]
    fn multi_line_literals_lose_the_closing_indentation() {
        assert_eq!(
            multi_line("\n    {\n      \"a\": 1\n    }\n    "),
            "{\n  \"a\": 1\n}"
        );
    }
}
