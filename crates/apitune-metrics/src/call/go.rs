//! Go snippets, read with tree-sitter-go: `http.NewRequest(method, url, body)` (and
//! `NewRequestWithContext`) with the `req.Header.Add/Set(name, value)` calls, the shape
//! httpsnippet renders, and the shortcuts `http.Get(url)`, `http.Head(url)` and
//! `http.Post(url, contentType, body)`, also on an `http.Client`.
//!
//! Names bound by `:=`, `=`, `var` and `const` are followed to their values; a body wrapped in
//! `strings.NewReader`, `bytes.NewBufferString`, `bytes.NewBuffer([]byte(...))` and the like is
//! read as the string inside.

use tree_sitter::Node;

use super::literal::{Unknown, strip_quotes, unescape};
use super::tree::{self, arguments, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, verb_method};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("go", tree_sitter_go::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let go = Go {
        code,
        bindings: bindings(&nodes, code),
    };
    let mut call = nodes
        .iter()
        .filter(|node| node.kind() == "call_expression")
        .find_map(|&call| go.request(call))?;
    for node in &nodes {
        if let Some((name, value)) = go.header(*node) {
            call.header(name, &value);
        }
    }
    call.finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes {
        let (names, values) = match node.kind() {
            "short_var_declaration" | "assignment_statement" => ("left", "right"),
            "var_spec" | "const_spec" => ("name", "value"),
            _ => continue,
        };
        let mut cursor = node.walk();
        let names: Vec<Node> = node
            .children_by_field_name(names, &mut cursor)
            .flat_map(|n| match n.kind() {
                "expression_list" => tree::named_children(n),
                _ => vec![n],
            })
            .collect();
        let values = node
            .child_by_field_name(values)
            .map(tree::named_children)
            .unwrap_or_default();
        for (name, value) in names.iter().zip(values) {
            if name.kind() == "identifier" {
                bindings.bind(text(*name, code), value.start_byte(), value);
            }
        }
    }
    bindings
}

/// Names and groups that values are followed through.
const TRANSPARENT: tree::Transparent = tree::Transparent {
    names: &["identifier"],
    groups: &["parenthesized_expression"],
};

struct Go<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
}

impl<'t> Go<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    /// `(operand, field)` of a selector expression (`http.NewRequest`).
    fn selector(&self, node: Node<'t>) -> Option<(Node<'t>, &str)> {
        if node.kind() != "selector_expression" {
            return None;
        }
        let operand = node.child_by_field_name("operand")?;
        Some((operand, self.text(node.child_by_field_name("field")?)))
    }

    fn request(&self, call: Node<'t>) -> Option<CallParts> {
        let (operand, function) = self.selector(call.child_by_field_name("function")?)?;
        let args = arguments(call);
        let mut parts = CallParts::default();
        match function {
            "NewRequest" | "NewRequestWithContext" if self.text(operand) == "http" => {
                let skip = usize::from(function == "NewRequestWithContext");
                let [method, url, body, ..] = args.get(skip..)? else {
                    return None;
                };
                parts.method = self.method(*method);
                parts.url = Some(self.string_or_placeholder(*url));
                parts.body = self.body(*body);
            }
            "Get" | "Head" | "Post" if self.is_client(operand) => {
                parts.method = verb_method(function).map(str::to_string);
                parts.url = Some(self.string_or_placeholder(*args.first()?));
                if let [_, content_type, body, ..] = args.as_slice() {
                    parts.header("Content-Type", &self.scalar(*content_type));
                    parts.body = self.body(*body);
                }
            }
            _ => return None,
        }
        Some(parts)
    }

    /// `http`, `http.DefaultClient`, or a name bound to an `http.Client`.
    fn is_client(&self, operand: Node<'t>) -> bool {
        let value = self.resolve(operand);
        let value = self.text(value).trim_start_matches('&');
        value == "http"
            || value.starts_with("http.DefaultClient")
            || value.starts_with("http.Client")
    }

    /// `X.Header.Add(name, value)` or `X.Header.Set(name, value)`.
    fn header(&self, node: Node<'t>) -> Option<(String, String)> {
        if node.kind() != "call_expression" {
            return None;
        }
        let (header, "Add" | "Set") = self.selector(node.child_by_field_name("function")?)? else {
            return None;
        };
        let (_, "Header") = self.selector(header)? else {
            return None;
        };
        let args = arguments(node);
        let [name, value, ..] = args.as_slice() else {
            return None;
        };
        Some((self.string(*name)?, self.scalar(*value)))
    }

    /// A method string, or one of `http.MethodGet` and its siblings.
    fn method(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        match self.selector(node) {
            Some((_, constant)) => constant.strip_prefix("Method").map(str::to_uppercase),
            None => self.string(node),
        }
    }

    fn resolve(&self, node: Node<'t>) -> Node<'t> {
        tree::resolve(node, self.code, &self.bindings, &TRANSPARENT)
    }

    /// The value of a string literal, or of a `+` concatenation holding at least one (other
    /// operands as `{expr}`).
    fn string(&self, node: Node<'t>) -> Option<String> {
        self.string_at(node, 0)
    }

    fn string_at(&self, node: Node<'t>, depth: usize) -> Option<String> {
        let node = self.resolve(node);
        let literal = self.text(node);
        match node.kind() {
            "interpreted_string_literal" => {
                Some(unescape(strip_quotes(literal, "\"", "\""), Unknown::Drop))
            }
            "raw_string_literal" => Some(strip_quotes(literal, "`", "`").replace('\r', "")),
            "binary_expression" if depth < MAX_DEPTH => tree::concatenation(
                node,
                self.code,
                "+",
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

    /// A body: `nil` is none; a reader or buffer made from a string, or `[]byte(...)` of one, is
    /// that string; anything else as written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let mut node = self.resolve(node);
        for _ in 0..MAX_DEPTH {
            let inner = match node.kind() {
                "nil" => return None,
                "call_expression" => {
                    let wraps = node
                        .child_by_field_name("function")
                        .and_then(|f| self.selector(f))
                        .is_some_and(|(_, name)| {
                            matches!(name, "NewReader" | "NewBufferString" | "NewBuffer")
                        });
                    arguments(node).first().copied().filter(|_| wraps)
                }
                "type_conversion_expression" => node.child_by_field_name("operand"),
                _ => None,
            };
            match inner {
                Some(inner) => node = self.resolve(inner),
                None => break,
            }
        }
        Some(self.scalar(node))
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_go_shape() {
        assert_reads_httpsnippet_shapes("go");
    }

    #[test]
    fn method_constants_raw_strings_and_byte_buffers() {
        let code = "package main\n\nfunc main() {\n\tbase := \"https://h.test/v1\"\n\tvar body = bytes.NewBuffer([]byte(`{\"a\":\"b\\n\"}`))\n\treq, err := http.NewRequestWithContext(ctx, http.MethodPatch, base+\"/pets/\"+id+\"?x=1\", body)\n\treq.Header.Set(\"Authorization\", \"Bearer \"+token)\n";
        let call = parse_call("go", code).unwrap();
        assert_eq!(call.method, "PATCH");
        assert_eq!(call.url, "https://h.test/v1/pets/{id}");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(call.headers, pairs(&[("Authorization", "Bearer {token}")]));
        assert_eq!(call.body.as_deref(), Some("{\"a\":\"b\\n\"}"));
    }

    #[test]
    fn http_shortcuts() {
        let post = parse_call(
            "go",
            "resp, err := http.Post(\"https://h.test/a\", \"application/json\", strings.NewReader(\"{}\"))",
        )
        .unwrap();
        assert_eq!(post.method, "POST");
        assert_eq!(post.headers, pairs(&[("Content-Type", "application/json")]));
        assert_eq!(post.body.as_deref(), Some("{}"));
        let get = parse_call(
            "go",
            "client := &http.Client{}\nresp, _ := client.Get(\"https://h.test/b?q=1\")",
        )
        .unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "https://h.test/b")
        );
        assert_eq!(parse_call("go", "c.Get(\"key\")"), None);
        assert_eq!(parse_call("go", "package main\nfunc main() {}"), None);
    }
}
