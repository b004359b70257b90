//! PHP snippets, read with tree-sitter-php: the cURL extension's options, set by
//! `curl_setopt_array($curl, [CURLOPT_URL => ..., ...])` (the shape httpsnippet renders),
//! `curl_setopt($curl, CURLOPT_..., ...)` or `curl_init($url)`; failing those, a Guzzle call
//! (`$client->request('POST', $url, [...])`, `$client->get(...)`).
//!
//! Names bound by assignments are followed to their values. A body given as `json_encode` of
//! an array literal (or as Guzzle's `json` option) is written as compact JSON.

use serde_json::{Map, Value};
use tree_sitter::{Language, Node};

use super::literal::{Unknown, strip_quotes, unescape, unescape_single_quoted};
use super::tree::{self, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, json_text, verb_method};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    // Without its `<?php` tag, PHP is template text to the full grammar.
    let (name, language): (_, Language) = if code.trim_start().starts_with("<?") {
        ("php", tree_sitter_php::LANGUAGE_PHP.into())
    } else {
        ("php_only", tree_sitter_php::LANGUAGE_PHP_ONLY.into())
    };
    let tree = tree::parse(name, language, code)?;
    let nodes = tree::descendants(tree.root_node());
    let php = Php {
        code,
        bindings: bindings(&nodes, code),
    };
    php.curl(&nodes)
        .or_else(|| {
            nodes
                .iter()
                .filter(|node| node.kind() == "member_call_expression")
                .find_map(|&call| php.guzzle(call))
        })?
        .finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes.iter().filter(|n| n.kind() == "assignment_expression") {
        if let (Some(name), Some(value)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) && name.kind() == "variable_name"
        {
            bindings.bind(text(name, code), value.start_byte(), value);
        }
    }
    bindings
}

/// The expressions passed to a call (each `argument` node wraps one).
fn arguments(call: Node) -> Vec<Node> {
    let mut cursor = call.walk();
    let list = call
        .child_by_field_name("arguments")
        .or_else(|| call.children(&mut cursor).find(|c| c.kind() == "arguments"));
    list.map(tree::named_children)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|arg| match arg.kind() {
            "argument" => tree::named_children(arg).last().copied(),
            _ => Some(arg),
        })
        .collect()
}

/// Names and groups that values are followed through.
const TRANSPARENT: tree::Transparent = tree::Transparent {
    names: &["variable_name"],
    groups: &["parenthesized_expression"],
};

struct Php<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
}

impl<'t> Php<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    /// The call the cURL options set in the snippet describe, later settings winning.
    fn curl(&self, nodes: &[Node<'t>]) -> Option<CallParts> {
        let mut options: Vec<(&str, Node<'t>)> = Vec::new();
        for node in nodes
            .iter()
            .filter(|n| n.kind() == "function_call_expression")
        {
            let Some(function) = node.child_by_field_name("function") else {
                continue;
            };
            let args = arguments(*node);
            match (self.text(function), args.as_slice()) {
                ("curl_init", [url, ..]) => options.push(("CURLOPT_URL", *url)),
                ("curl_setopt", [_, option, value, ..]) => {
                    options.push((self.text(*option), *value));
                }
                ("curl_setopt_array", [_, array, ..]) => {
                    for (key, value) in self.entries(*array) {
                        if let Some(key) = key {
                            options.push((self.text(key), value));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut call = CallParts::default();
        let mut implied = None;
        for (option, value) in options {
            match option {
                "CURLOPT_URL" => call.url = Some(self.string_or_placeholder(value)),
                "CURLOPT_CUSTOMREQUEST" => call.method = self.string(value),
                "CURLOPT_POSTFIELDS" => call.body = self.body(value),
                "CURLOPT_HTTPHEADER" => {
                    for (_, line) in self.entries(value) {
                        call.header_line(&self.scalar(line));
                    }
                }
                "CURLOPT_POST" if self.truthy(value) => implied = Some("POST"),
                "CURLOPT_PUT" if self.truthy(value) => implied = Some("PUT"),
                "CURLOPT_NOBODY" if self.truthy(value) => implied = Some("HEAD"),
                "CURLOPT_HTTPGET" if self.truthy(value) => implied = Some("GET"),
                _ => {}
            }
        }
        if call.method.is_none() {
            call.method = implied.map(str::to_string);
        }
        call.url.is_some().then_some(call)
    }

    /// Guzzle: `$client->request(method, url, options)` or `$client->get(url, options)` on a
    /// `new ...Client([...])`, whose `base_uri` prefixes a relative URL.
    fn guzzle(&self, call: Node<'t>) -> Option<CallParts> {
        let client = self.resolve(call.child_by_field_name("object")?);
        let class = tree::named_children(client).first().map(|c| self.text(*c));
        if client.kind() != "object_creation_expression" || !class?.ends_with("Client") {
            return None;
        }
        let name = self.text(call.child_by_field_name("name")?);
        let mut args = arguments(call).into_iter();
        let mut parts = CallParts {
            method: match name {
                "request" => self.string(args.next()?),
                verb => Some(verb_method(verb)?.to_string()),
            },
            ..CallParts::default()
        };
        let url = self.string_or_placeholder(args.next()?);
        let base = arguments(client)
            .first()
            .and_then(|defaults| self.option(*defaults, "base_uri"))
            .and_then(|base| self.string(base));
        parts.url = Some(match base {
            Some(base) if !url.contains("://") => base + &url,
            _ => url,
        });
        if let Some(options) = args.next() {
            parts.headers = self
                .option(options, "headers")
                .map_or_else(Vec::new, |h| self.pairs(h));
            parts.query = self
                .option(options, "query")
                .map_or_else(Vec::new, |q| self.pairs(q));
            parts.body = match (self.option(options, "json"), self.option(options, "body")) {
                (Some(json), _) => Some(match self.json(json, 0) {
                    Some(value) => json_text(&value),
                    None => self.scalar(json),
                }),
                (None, Some(body)) => self.body(body),
                (None, None) => self
                    .option(options, "form_params")
                    .and_then(|form| self.body(form)),
            };
        }
        Some(parts)
    }

    /// `(key, value)` of each element of an array literal.
    fn entries(&self, array: Node<'t>) -> Vec<(Option<Node<'t>>, Node<'t>)> {
        let array = self.resolve(array);
        if array.kind() != "array_creation_expression" {
            return Vec::new();
        }
        tree::named_children(array)
            .into_iter()
            .filter(|e| e.kind() == "array_element_initializer")
            .filter_map(|element| match tree::named_children(element).as_slice() {
                [key, value] => Some((Some(*key), *value)),
                [value] => Some((None, *value)),
                _ => None,
            })
            .collect()
    }

    /// The value under a string key of an array literal.
    fn option(&self, array: Node<'t>, name: &str) -> Option<Node<'t>> {
        self.entries(array)
            .into_iter()
            .find(|(key, _)| key.and_then(|k| self.string(k)).as_deref() == Some(name))
            .map(|(_, value)| value)
    }

    fn pairs(&self, array: Node<'t>) -> Vec<(String, String)> {
        self.entries(array)
            .into_iter()
            .filter_map(|(key, value)| Some((self.scalar(key?), self.scalar(value))))
            .collect()
    }

    fn truthy(&self, node: Node<'t>) -> bool {
        !matches!(
            self.text(self.resolve(node)).to_ascii_lowercase().as_str(),
            "0" | "false" | "null" | "0l"
        )
    }

    fn resolve(&self, node: Node<'t>) -> Node<'t> {
        tree::resolve(node, self.code, &self.bindings, &TRANSPARENT)
    }

    /// The value of a string literal (`"..."` with its `$var` / `{$expr}` interpolations kept
    /// as written), or of a `.` concatenation holding at least one (other operands as
    /// `{expr}`).
    fn string(&self, node: Node<'t>) -> Option<String> {
        self.string_at(node, 0)
    }

    fn string_at(&self, node: Node<'t>, depth: usize) -> Option<String> {
        let node = self.resolve(node);
        let literal = self.text(node);
        match node.kind() {
            "encapsed_string" => Some(unescape(strip_quotes(literal, "\"", "\""), Unknown::Keep)),
            "string" => Some(unescape_single_quoted(strip_quotes(literal, "'", "'"))),
            "binary_expression" if depth < MAX_DEPTH => tree::concatenation(
                node,
                self.code,
                ".",
                |operand| self.string_at(operand, depth + 1),
                tree::braced,
            ),
            _ => None,
        }
    }

    fn string_or_placeholder(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| tree::braced(self.text(node)))
    }

    fn scalar(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| self.text(self.resolve(node)).to_string())
    }

    /// A body: `json_encode` of an array literal, or an array literal itself (form fields), is
    /// compact JSON; a string its value; anything else as written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        let literal = match node.kind() {
            "null" => return None,
            "array_creation_expression" => Some(node),
            "function_call_expression"
                if node
                    .child_by_field_name("function")
                    .is_some_and(|f| self.text(f) == "json_encode") =>
            {
                arguments(node).first().copied()
            }
            _ => None,
        };
        if let Some(json) = literal.and_then(|l| self.json(l, 0)) {
            return Some(json_text(&json));
        }
        Some(self.scalar(node))
    }

    /// The JSON value `json_encode` writes for a literal: an array with keys is an object.
    fn json(&self, node: Node<'t>, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        let node = self.resolve(node);
        Some(match node.kind() {
            "array_creation_expression" => {
                let entries = self.entries(node);
                if entries.iter().all(|(key, _)| key.is_none()) {
                    Value::Array(
                        entries
                            .into_iter()
                            .map(|(_, value)| self.json(value, depth + 1))
                            .collect::<Option<_>>()?,
                    )
                } else {
                    let mut map = Map::new();
                    for (key, value) in entries {
                        let key = key?;
                        let key = self.string(key).or_else(|| {
                            (key.kind() == "integer").then(|| self.text(key).to_string())
                        })?;
                        map.insert(key, self.json(value, depth + 1)?);
                    }
                    Value::Object(map)
                }
            }
            "encapsed_string" | "string" => Value::String(self.string(node)?),
            "integer" => Value::from(self.text(node).replace('_', "").parse::<i64>().ok()?),
            "float" => serde_json::Number::from_f64(self.text(node).replace('_', "").parse().ok()?)
                .map(Value::Number)?,
            "unary_op_expression" => {
                let operand = node.child_by_field_name("argument")?;
                let operator = node.child_by_field_name("operator").map(|o| self.text(o));
                match (operator, self.json(operand, depth + 1)?) {
                    (Some("-"), Value::Number(n)) if n.is_i64() => Value::from(-n.as_i64()?),
                    (Some("-"), Value::Number(n)) => {
                        serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)?
                    }
                    _ => return None,
                }
            }
            "boolean" => Value::Bool(self.text(node).eq_ignore_ascii_case("true")),
            "null" => Value::Null,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_curl_setopt_array_shape() {
        assert_reads_httpsnippet_shapes("php");
    }

    #[test]
    fn curl_setopt_calls_json_encode_and_interpolation() {
        let code = "<?php\n$base = 'https://h.test';\n$ch = curl_init($base . \"/pets/{$id}?x=1\");\ncurl_setopt($ch, CURLOPT_POST, 1);\ncurl_setopt($ch, CURLOPT_POSTFIELDS, json_encode(['name' => \"R\\\"ex\", 'tags' => [1, -2.5, true, null]]));\ncurl_setopt($ch, CURLOPT_HTTPHEADER, array('Content-Type: application/json', \"X-Key: \\$k\"));\n$out = curl_exec($ch);";
        let call = parse_call("php", code).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://h.test/pets/{$id}");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(
            call.headers,
            pairs(&[("Content-Type", "application/json"), ("X-Key", "$k")])
        );
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"name":"R\"ex","tags":[1,-2.5,true,null]}"#)
        );
    }

    #[test]
    fn guzzle_and_code_without_its_tag() {
        let code = "$client = new \\GuzzleHttp\\Client(['base_uri' => 'https://h.test/v1']);\n$response = $client->request('PUT', '/pets/1', [\n  'headers' => ['A' => 'b'],\n  'query' => ['q' => 2],\n  'json' => ['a' => 1],\n]);";
        let call = parse_call("php", code).unwrap();
        assert_eq!(
            (call.method.as_str(), call.url.as_str()),
            ("PUT", "https://h.test/v1/pets/1")
        );
        assert_eq!(call.headers, pairs(&[("A", "b")]));
        assert_eq!(call.query, pairs(&[("q", "2")]));
        assert_eq!(call.body.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(parse_call("php", "<?php\necho 'hello';"), None);
        assert_eq!(parse_call("php", "<?php\n$x->get('/a');"), None);
    }
}
