//! JavaScript and Node snippets, read with tree-sitter-javascript: `fetch(url, init)`,
//! `XMLHttpRequest` (`open`, `setRequestHeader`, `send`), `axios` in its call forms (and
//! instances from `axios.create`), and on Node also the `request` package's `request(options)`,
//! the shape httpsnippet renders for Node. The first such call in the snippet counts.
//!
//! Names bound by `const`/`let`/`var` declarations or plain assignments are followed to their
//! values, so `const options = {...}; request(options, ...)` reads like the inline form.

use serde_json::{Map, Value};
use tree_sitter::Node;

use super::literal::{Unknown, unescape};
use super::tree::{self, arguments, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, json_text, verb_method};

/// Where the snippet runs, which decides the libraries it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runtime {
    Browser,
    Node,
}

pub(super) fn parse(code: &str, runtime: Runtime) -> Option<HttpCall> {
    let tree = tree::parse("javascript", tree_sitter_javascript::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let js = Js {
        code,
        bindings: bindings(&nodes, code),
        nodes: &nodes,
    };
    nodes
        .iter()
        .filter(|node| node.kind() == "call_expression")
        .find_map(|&call| {
            let callee = call.child_by_field_name("function")?;
            let args = arguments(call);
            js.fetch(callee, &args)
                .or_else(|| js.xhr(callee, &args))
                .or_else(|| js.axios(callee, &args))
                .or_else(|| match runtime {
                    Runtime::Node => js.request(callee, &args),
                    Runtime::Browser => None,
                })
        })?
        .finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes {
        let (name, value) = match node.kind() {
            "variable_declarator" => ("name", "value"),
            "assignment_expression" => ("left", "right"),
            _ => continue,
        };
        if let (Some(name), Some(value)) = (
            node.child_by_field_name(name),
            node.child_by_field_name(value),
        ) && name.kind() == "identifier"
        {
            bindings.bind(text(name, code), value.start_byte(), value);
        }
    }
    bindings
}

/// Names and groups that values are followed through.
const TRANSPARENT: tree::Transparent = tree::Transparent {
    names: &["identifier", "shorthand_property_identifier"],
    groups: &["parenthesized_expression", "await_expression"],
};

struct Js<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
    nodes: &'c [Node<'t>],
}

impl<'t> Js<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    /// `fetch(url, { method, headers, body })`, also as `window.fetch`.
    fn fetch(&self, callee: Node<'t>, args: &[Node<'t>]) -> Option<CallParts> {
        let global = match self.member(callee) {
            Some((object, "fetch")) => {
                matches!(self.text(object), "window" | "globalThis" | "self")
            }
            Some(_) => false,
            None => self.text(callee) == "fetch",
        };
        if !global {
            return None;
        }
        let mut call = CallParts {
            url: Some(self.string_or_placeholder(*args.first()?)),
            ..CallParts::default()
        };
        if let Some(init) = args.get(1) {
            call.method = self.field(*init, "method").and_then(|m| self.string(m));
            call.headers = self
                .field(*init, "headers")
                .map_or_else(Vec::new, |h| self.pairs(h));
            call.body = self.field(*init, "body").and_then(|b| self.body(b));
        }
        Some(call)
    }

    /// `x.open(method, url)`, with the same `x`'s `setRequestHeader(name, value)` and
    /// `send(body)` calls anywhere in the snippet.
    fn xhr(&self, callee: Node<'t>, args: &[Node<'t>]) -> Option<CallParts> {
        let (receiver, "open") = self.member(callee)? else {
            return None;
        };
        let method = self.string(*args.first()?)?;
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let mut call = CallParts {
            method: Some(method),
            url: Some(self.string_or_placeholder(*args.get(1)?)),
            ..CallParts::default()
        };
        let receiver = self.text(receiver);
        for node in self.nodes.iter().filter(|n| n.kind() == "call_expression") {
            let Some((r, name)) = node
                .child_by_field_name("function")
                .and_then(|f| self.member(f))
            else {
                continue;
            };
            if self.text(r) != receiver {
                continue;
            }
            match (name, arguments(*node).as_slice()) {
                ("setRequestHeader", [name, value, ..]) => {
                    if let Some(name) = self.string(*name) {
                        call.header(name, &self.scalar(*value));
                    }
                }
                ("send", [body, ..]) if call.body.is_none() => call.body = self.body(*body),
                _ => {}
            }
        }
        Some(call)
    }

    /// `axios(config)`, `axios(url, config)`, `axios.get(url, config)`,
    /// `axios.post(url, data, config)`, `axios.request(config)`, and the same on an instance
    /// made by `axios.create(defaults)`.
    fn axios(&self, callee: Node<'t>, args: &[Node<'t>]) -> Option<CallParts> {
        let (defaults, verb) = match callee.kind() {
            "identifier" if self.text(callee) == "axios" => (None, None),
            "member_expression" => {
                let (receiver, name) = self.member(callee)?;
                (self.axios_instance(receiver)?, Some(name))
            }
            _ => return None,
        };
        let mut args = args.iter().copied();
        let mut call = CallParts::default();
        let config = match verb {
            None | Some("request") => {
                let first = args.next()?;
                if self.resolve(first).kind() == "object" {
                    Some(first)
                } else {
                    call.url = Some(self.string_or_placeholder(first));
                    args.next()
                }
            }
            Some(verb) => {
                call.method = Some(verb_method(verb)?.to_string());
                call.url = Some(self.string_or_placeholder(args.next()?));
                if matches!(verb, "post" | "put" | "patch") {
                    call.body = args.next().and_then(|data| self.body(data));
                }
                args.next()
            }
        };
        let mut base = None;
        for config in defaults.into_iter().chain(config) {
            base = self.axios_config(config, &mut call).or(base);
        }
        call.url = match (base, call.url.take()) {
            (Some(base), Some(url)) if !url.contains("://") => Some(base + &url),
            (base, url) => Some(url.or(base)?),
        };
        Some(call)
    }

    /// `Some(None)` for `axios` itself, `Some(Some(defaults))` for an instance
    /// `axios.create(defaults)`.
    fn axios_instance(&self, receiver: Node<'t>) -> Option<Option<Node<'t>>> {
        // `axios` is often bound to `require('axios')`: the name is what tells.
        if self.text(receiver) == "axios" {
            return Some(None);
        }
        let receiver = self.resolve(receiver);
        if receiver.kind() != "call_expression" {
            return None;
        }
        let (axios, "create") = self.member(receiver.child_by_field_name("function")?)? else {
            return None;
        };
        (self.text(axios) == "axios").then(|| arguments(receiver).first().copied())
    }

    /// Applies an axios config to `call`; its `baseURL`, which applies once all are read.
    fn axios_config(&self, config: Node<'t>, call: &mut CallParts) -> Option<String> {
        if let Some(method) = self.field(config, "method").and_then(|m| self.string(m)) {
            call.method = Some(method);
        }
        if let Some(url) = self.field(config, "url") {
            call.url = Some(self.string_or_placeholder(url));
        }
        if let Some(params) = self.field(config, "params") {
            call.query.extend(self.pairs(params));
        }
        if let Some(headers) = self.field(config, "headers") {
            call.headers.extend(self.pairs(headers));
        }
        if let Some(data) = self.field(config, "data") {
            call.body = self.body(data);
        }
        self.field(config, "baseURL").and_then(|b| self.string(b))
    }

    /// The `request` package: `request(options, callback)`, `request(url, options, callback)`
    /// and `request.post(...)`, options holding `method`, `url`/`uri`, `qs`, `headers` and a
    /// `body`, `json` or `form` body.
    fn request(&self, callee: Node<'t>, args: &[Node<'t>]) -> Option<CallParts> {
        let method = match callee.kind() {
            "identifier" if self.text(callee) == "request" => None,
            "member_expression" => match self.member(callee)? {
                (receiver, verb) if self.text(receiver) == "request" => Some(verb_method(verb)?),
                _ => return None,
            },
            _ => return None,
        };
        let mut call = CallParts {
            method: method.map(str::to_string),
            ..CallParts::default()
        };
        let mut args = args.iter().copied();
        let mut options = args.next()?;
        if self.resolve(options).kind() != "object" {
            call.url = Some(self.string_or_placeholder(options));
            match args.next() {
                Some(next) if self.resolve(next).kind() == "object" => options = next,
                _ => return Some(call),
            }
        }
        if let Some(method) = self.field(options, "method").and_then(|m| self.string(m)) {
            call.method = Some(method);
        }
        if let Some(url) = self
            .field(options, "url")
            .or_else(|| self.field(options, "uri"))
        {
            call.url = Some(self.string_or_placeholder(url));
        }
        call.query = self
            .field(options, "qs")
            .map_or_else(Vec::new, |q| self.pairs(q));
        call.headers = self
            .field(options, "headers")
            .map_or_else(Vec::new, |h| self.pairs(h));
        // `json: {...}` is the body itself; `json: true` only says to send `body` as JSON.
        let json = self
            .field(options, "json")
            .filter(|j| !matches!(self.resolve(*j).kind(), "true" | "false"));
        call.body = ["body", "form"]
            .into_iter()
            .find_map(|name| self.field(options, name))
            .or(json)
            .and_then(|body| self.body(body));
        Some(call)
    }

    /// `(object, property)` of a member expression.
    fn member(&self, node: Node<'t>) -> Option<(Node<'t>, &str)> {
        if node.kind() != "member_expression" {
            return None;
        }
        let object = node.child_by_field_name("object")?;
        Some((object, self.text(node.child_by_field_name("property")?)))
    }

    /// `node` with names followed to the values bound to them.
    fn resolve(&self, node: Node<'t>) -> Node<'t> {
        tree::resolve(node, self.code, &self.bindings, &TRANSPARENT)
    }

    /// The value of a property of an object literal (`{ name: value }` or `{ name }`).
    fn field(&self, object: Node<'t>, name: &str) -> Option<Node<'t>> {
        let object = self.resolve(object);
        if object.kind() != "object" {
            return None;
        }
        tree::named_children(object)
            .into_iter()
            .find_map(|entry| match entry.kind() {
                "pair" => {
                    let key = entry.child_by_field_name("key")?;
                    (self.key(key)? == name).then(|| entry.child_by_field_name("value"))?
                }
                "shorthand_property_identifier" if self.text(entry) == name => Some(entry),
                _ => None,
            })
    }

    fn key(&self, key: Node) -> Option<String> {
        match key.kind() {
            "property_identifier" | "number" => Some(self.text(key).to_string()),
            "string" => self.literal(key),
            _ => None,
        }
    }

    /// The value of a string expression: a literal, a template (its `${expr}` kept as written),
    /// or a `+` concatenation holding at least one of them (other operands as `${expr}`).
    fn string(&self, node: Node<'t>) -> Option<String> {
        self.string_at(node, 0)
    }

    fn string_at(&self, node: Node<'t>, depth: usize) -> Option<String> {
        let node = self.resolve(node);
        match node.kind() {
            "string" | "template_string" => self.literal(node),
            "binary_expression" if depth < MAX_DEPTH => tree::concatenation(
                node,
                self.code,
                "+",
                |operand| self.string_at(operand, depth + 1),
                |expr| format!("${{{expr}}}"),
            ),
            _ => None,
        }
    }

    /// A URL as a string, or `${expr}` for one that cannot be evaluated.
    fn string_or_placeholder(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| format!("${{{}}}", self.text(node)))
    }

    /// A string or template literal's value.
    fn literal(&self, node: Node) -> Option<String> {
        if !matches!(node.kind(), "string" | "template_string") {
            return None;
        }
        let mut out = String::new();
        for part in tree::named_children(node) {
            match part.kind() {
                "escape_sequence" => out.push_str(&unescape(self.text(part), Unknown::Drop)),
                _ => out.push_str(self.text(part)),
            }
        }
        Some(out)
    }

    /// A header or parameter value: a string's value, anything else as written.
    fn scalar(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| self.text(self.resolve(node)).to_string())
    }

    /// `(name, value)` pairs of an object literal, `new Headers({...})`,
    /// `new URLSearchParams({...})` or an array of `[name, value]` arrays.
    fn pairs(&self, node: Node<'t>) -> Vec<(String, String)> {
        let node = self.resolve(node);
        match node.kind() {
            "object" => tree::named_children(node)
                .into_iter()
                .filter_map(|entry| match entry.kind() {
                    "pair" => Some((
                        self.key(entry.child_by_field_name("key")?)?,
                        self.scalar(entry.child_by_field_name("value")?),
                    )),
                    "shorthand_property_identifier" => {
                        Some((self.text(entry).to_string(), self.scalar(entry)))
                    }
                    _ => None,
                })
                .collect(),
            "new_expression" => node
                .child_by_field_name("arguments")
                .and_then(|args| tree::named_children(args).first().copied())
                .map_or_else(Vec::new, |init| self.pairs(init)),
            "array" => tree::named_children(node)
                .into_iter()
                .filter_map(|entry| match tree::named_children(entry).as_slice() {
                    [name, value] if entry.kind() == "array" => {
                        Some((self.string(*name)?, self.scalar(*value)))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A body: a string's value; an object or array literal, or `JSON.stringify` of one, as
    /// compact JSON; no body for `null`/`undefined`; anything else as written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let resolved = self.resolve(node);
        match resolved.kind() {
            "null" | "undefined" => return None,
            "identifier" if self.text(resolved) == "undefined" => return None,
            "object" | "array" => {
                if let Some(json) = self.json(resolved, 0) {
                    return Some(json_text(&json));
                }
            }
            "call_expression" => {
                let stringify = resolved
                    .child_by_field_name("function")
                    .is_some_and(|f| self.text(f) == "JSON.stringify");
                if let Some(json) = arguments(resolved)
                    .first()
                    .filter(|_| stringify)
                    .and_then(|value| self.json(*value, 0))
                {
                    return Some(json_text(&json));
                }
            }
            _ => {}
        }
        Some(
            self.string(resolved)
                .unwrap_or_else(|| self.text(resolved).to_string()),
        )
    }

    /// The JSON value of a literal: objects, arrays, strings without substitutions, numbers,
    /// booleans and `null`, following names bound to literals.
    fn json(&self, node: Node<'t>, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        let node = self.resolve(node);
        Some(match node.kind() {
            "object" => {
                let mut map = Map::new();
                for entry in tree::named_children(node) {
                    let (key, value) = match entry.kind() {
                        "pair" => (
                            self.key(entry.child_by_field_name("key")?)?,
                            entry.child_by_field_name("value")?,
                        ),
                        "shorthand_property_identifier" => (self.text(entry).to_string(), entry),
                        _ => return None,
                    };
                    map.insert(key, self.json(value, depth + 1)?);
                }
                Value::Object(map)
            }
            "array" => Value::Array(
                tree::named_children(node)
                    .into_iter()
                    .map(|item| self.json(item, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            "string" => Value::String(self.literal(node)?),
            "template_string" => {
                let parts = tree::named_children(node);
                if parts.iter().any(|p| p.kind() == "template_substitution") {
                    return None;
                }
                Value::String(self.literal(node)?)
            }
            "number" => number(self.text(node))?,
            "unary_expression" => {
                let operand = node.child_by_field_name("argument")?;
                match (
                    self.text(node.child_by_field_name("operator")?),
                    operand.kind(),
                ) {
                    ("-", "number") => number(&format!("-{}", self.text(operand)))?,
                    ("+", "number") => number(self.text(operand))?,
                    _ => return None,
                }
            }
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => return None,
        })
    }
}

/// A JavaScript number literal as JSON: integers stay integers.
fn number(literal: &str) -> Option<Value> {
    let literal = literal.replace('_', "");
    let (negative, digits) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal.as_str()),
    };
    let radix = match digits.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => 16,
        Some("0o") => 8,
        Some("0b") => 2,
        _ => 10,
    };
    if radix != 10 {
        let value = i64::from_str_radix(digits.get(2..)?, radix).ok()?;
        return Some(Value::from(if negative { -value } else { value }));
    }
    if let Ok(value) = literal.parse::<i64>() {
        return Some(Value::from(value));
    }
    serde_json::Number::from_f64(literal.parse().ok()?).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_xhr_and_node_request_shapes() {
        assert_reads_httpsnippet_shapes("javascript");
        assert_reads_httpsnippet_shapes("node");
    }

    #[test]
    fn fetch_with_an_init_object_and_a_stringified_body() {
        let code = r#"
const url = 'https://api.example.com/v2/pets?limit=10';
const options = {
  method: 'post',
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  body: JSON.stringify({ name: "Rex", tags: ['a\'b'], age: 3, weight: -2.5, ok: true, none: null }),
};
fetch(url, options).then((res) => res.json());
"#;
        let call = parse_call("javascript", code).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://api.example.com/v2/pets");
        assert_eq!(call.query, pairs(&[("limit", "10")]));
        assert_eq!(
            call.headers,
            pairs(&[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer ${token}")
            ])
        );
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"name":"Rex","tags":["a'b"],"age":3,"weight":-2.5,"ok":true,"none":null}"#)
        );
    }

    #[test]
    fn fetch_with_a_template_url_and_a_body_it_cannot_evaluate() {
        let code = "const res = await fetch(`${BASE}/pets/${id}`, { method: 'PUT', body: JSON.stringify(pet) });";
        let call = parse_call("node", code).unwrap();
        assert_eq!(call.method, "PUT");
        assert_eq!(call.url, "${BASE}/pets/${id}");
        assert_eq!(call.body.as_deref(), Some("JSON.stringify(pet)"));
        let bare = parse_call("javascript", "window.fetch(API_URL + '/pets?x=1')").unwrap();
        assert_eq!(
            (bare.method.as_str(), bare.url.as_str()),
            ("GET", "${API_URL}/pets")
        );
        assert_eq!(bare.query, pairs(&[("x", "1")]));
    }

    #[test]
    fn axios_forms() {
        let get = parse_call(
            "javascript",
            "axios.get('https://h.test/pets', { params: { limit: 5, q }, headers: { 'X-Key': key } });",
        )
        .unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "https://h.test/pets")
        );
        assert_eq!(get.query, pairs(&[("limit", "5"), ("q", "q")]));
        assert_eq!(get.headers, pairs(&[("X-Key", "key")]));
        assert_eq!(get.body, None);

        let post = parse_call(
            "node",
            "const axios = require('axios');\nconst data = {name: 'Rex'};\naxios.post('https://h.test/pets', data, { headers: { 'Content-Type': 'application/json' } });",
        )
        .unwrap();
        assert_eq!(post.method, "POST");
        assert_eq!(post.body.as_deref(), Some(r#"{"name":"Rex"}"#));
        assert_eq!(post.headers, pairs(&[("Content-Type", "application/json")]));

        let config = parse_call(
            "javascript",
            "axios({ method: 'patch', url: '/pets/1', baseURL: 'https://h.test/v1', data: { a: [1, 2] } })",
        )
        .unwrap();
        assert_eq!(
            (config.method.as_str(), config.url.as_str()),
            ("PATCH", "https://h.test/v1/pets/1")
        );
        assert_eq!(config.body.as_deref(), Some(r#"{"a":[1,2]}"#));

        let instance = parse_call(
            "javascript",
            "const api = axios.create({ baseURL: 'https://h.test', headers: { A: '1' } });\napi.delete('/pets/2');",
        )
        .unwrap();
        assert_eq!(
            (instance.method.as_str(), instance.url.as_str()),
            ("DELETE", "https://h.test/pets/2")
        );
        assert_eq!(instance.headers, pairs(&[("A", "1")]));
    }

    #[test]
    fn node_request_with_a_json_object_and_a_url_argument() {
        let code =
            "request.post('https://h.test/pets?a=1', { json: { name: 'Rex' }, qs: { b: 2 } }, cb);";
        let call = parse_call("node", code).unwrap();
        assert_eq!(
            (call.method.as_str(), call.url.as_str()),
            ("POST", "https://h.test/pets")
        );
        assert_eq!(call.query, pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(call.body.as_deref(), Some(r#"{"name":"Rex"}"#));
        // The browser has no `request` package.
        assert_eq!(parse_call("javascript", code), None);
    }

    #[test]
    fn xhr_with_a_string_body_sent_inline_and_no_open_call_is_no_call() {
        let code = "var x = new XMLHttpRequest();\nx.open('post', 'https://h.test/a');\nx.setRequestHeader('A', 'b');\nother.setRequestHeader('C', 'd');\nx.send('k=v\\tw');";
        let call = parse_call("javascript", code).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.headers, pairs(&[("A", "b")]));
        assert_eq!(call.body.as_deref(), Some("k=v\tw"));
        assert_eq!(
            parse_call("javascript", "window.open('https://h.test', '_blank');"),
            None
        );
        assert_eq!(parse_call("javascript", "console.log('hi')"), None);
        assert_eq!(parse_call("javascript", "store.fetch('key')"), None);
    }
}
