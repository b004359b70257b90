//! Java snippets, read with tree-sitter-java: a builder chain that names a URL. OkHttp's
//! `new Request.Builder().url(...).post(body).addHeader(...)` with
//! `RequestBody.create(mediaType, "...")`, the shape httpsnippet renders; `java.net.http`'s
//! `HttpRequest.newBuilder().uri(URI.create(...)).header(...).POST(BodyPublishers.ofString(...))`;
//! and Unirest's `Unirest.post(url).header(...).body(...)`. The first such chain counts.
//!
//! Names bound by declarations and assignments are followed to their values.

use tree_sitter::Node;

use super::literal::{Unknown, strip_quotes, unescape};
use super::tree::{self, arguments, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, verb_method};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("java", tree_sitter_java::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let java = Java {
        code,
        bindings: bindings(&nodes, code),
    };
    nodes
        .iter()
        .filter(|node| is_chain_top(**node))
        .find_map(|&top| java.chain(top))?
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

/// A method invocation that is not itself the receiver of the next call in a chain.
fn is_chain_top(node: Node) -> bool {
    node.kind() == "method_invocation"
        && !node.parent().is_some_and(|parent| {
            parent.kind() == "method_invocation"
                && parent.child_by_field_name("object") == Some(node)
        })
}

/// Names and groups that values are followed through.
const TRANSPARENT: tree::Transparent = tree::Transparent {
    names: &["identifier"],
    groups: &["parenthesized_expression"],
};

struct Java<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
}

impl<'t> Java<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    /// The call a chain of invocations describes, read from its innermost step out.
    fn chain(&self, top: Node<'t>) -> Option<CallParts> {
        let mut steps = Vec::new();
        let mut node = top;
        while node.kind() == "method_invocation" && steps.len() < 256 {
            steps.push(node);
            match node.child_by_field_name("object") {
                Some(object) => node = object,
                None => break,
            }
        }
        let mut call = CallParts::default();
        for step in steps.into_iter().rev() {
            let name = self.text(step.child_by_field_name("name")?);
            let args = arguments(step);
            let receiver = step.child_by_field_name("object");
            match (name, args.as_slice()) {
                ("url" | "uri", [url, ..]) => call.url = Some(self.url(*url)),
                (verb, [url, ..])
                    if receiver.is_some_and(|r| self.text(r) == "Unirest")
                        && verb_method(verb).is_some() =>
                {
                    call.method = verb_method(verb).map(str::to_string);
                    call.url = Some(self.url(*url));
                }
                ("addHeader" | "header", [name, value, ..]) => {
                    if let Some(name) = self.string(*name) {
                        call.header(name, &self.scalar(*value));
                    }
                }
                ("headers", pairs) => {
                    for pair in pairs.chunks_exact(2) {
                        if let Some(name) = self.string(pair[0]) {
                            call.header(name, &self.scalar(pair[1]));
                        }
                    }
                }
                ("queryString", [name, value, ..]) => {
                    if let Some(name) = self.string(*name) {
                        call.query.push((name, self.scalar(*value)));
                    }
                }
                ("method", [method, rest @ ..]) => {
                    call.method = self.string(*method);
                    call.body = rest.first().and_then(|body| self.body(*body));
                }
                ("body", [body, ..]) => call.body = self.body(*body),
                (verb, rest) if verb_method(verb).is_some() && receiver.is_some() => {
                    call.method = verb_method(verb).map(str::to_string);
                    call.body = rest.first().and_then(|body| self.body(*body));
                }
                _ => {}
            }
        }
        call.url.is_some().then_some(call)
    }

    /// A URL argument: a string, `URI.create(s)` / `new URI(s)` of one, or `{expr}`.
    fn url(&self, node: Node<'t>) -> String {
        let resolved = self.resolve(node);
        let wrapped = match resolved.kind() {
            "method_invocation" | "object_creation_expression" => {
                arguments(resolved).first().and_then(|s| self.string(*s))
            }
            _ => None,
        };
        wrapped
            .or_else(|| self.string(resolved))
            .unwrap_or_else(|| tree::braced(self.text(node)))
    }

    /// A body: `null` or `noBody()` is none; `RequestBody.create(...)`,
    /// `BodyPublishers.ofString(...)` and the like are the string they wrap; anything else as
    /// written.
    fn body(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        match node.kind() {
            "null_literal" => None,
            "method_invocation" => {
                let name = node.child_by_field_name("name").map(|n| self.text(n));
                if name == Some("noBody") {
                    return None;
                }
                if name == Some("getBytes") {
                    let object = node.child_by_field_name("object")?;
                    return Some(self.scalar(object));
                }
                arguments(node)
                    .into_iter()
                    .find_map(|arg| self.string(arg))
                    .or_else(|| Some(self.text(node).to_string()))
            }
            _ => Some(self.scalar(node)),
        }
    }

    fn resolve(&self, node: Node<'t>) -> Node<'t> {
        tree::resolve(node, self.code, &self.bindings, &TRANSPARENT)
    }

    /// The value of a string literal or text block, or of a `+` concatenation holding at least
    /// one (other operands as `{expr}`).
    fn string(&self, node: Node<'t>) -> Option<String> {
        self.string_at(node, 0)
    }

    fn string_at(&self, node: Node<'t>, depth: usize) -> Option<String> {
        let node = self.resolve(node);
        match node.kind() {
            "string_literal" => Some(string_literal(self.text(node))),
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

    fn scalar(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| self.text(self.resolve(node)).to_string())
    }
}

/// A `"..."` literal's value, or a `"""` text block's with its incidental indentation removed
/// as javac does.
fn string_literal(literal: &str) -> String {
    if !literal.starts_with("\"\"\"") {
        return unescape(strip_quotes(literal, "\"", "\""), Unknown::Drop);
    }
    let body = strip_quotes(literal, "\"\"\"", "\"\"\"");
    let body = body.split_once('\n').map_or("", |(_, rest)| rest);
    let lines: Vec<&str> = body.split('\n').collect();
    let closing_line_blank = lines.last().is_some_and(|l| l.trim().is_empty());
    let indent = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| !l.trim().is_empty() || (*i + 1 == lines.len() && closing_line_blank))
        .map(|(_, l)| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let stripped: Vec<&str> = lines
        .iter()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect();
    unescape(&stripped.join("\n"), Unknown::Drop)
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};
    use super::string_literal;

    #[test]
    fn reads_httpsnippets_okhttp_shape() {
        assert_reads_httpsnippet_shapes("java");
    }

    #[test]
    fn okhttp_with_a_custom_method_and_a_body_made_inline() {
        let code = "Request request = new Request.Builder()\n  .url(BASE + \"/pets?x=1\")\n  .method(\"purge\", RequestBody.create(\"{\\\"a\\\":1}\", JSON))\n  .header(\"A\", \"b\")\n  .build();\nResponse response = client.newCall(request).execute();";
        let call = parse_call("java", code).unwrap();
        assert_eq!(call.method, "PURGE");
        assert_eq!(call.url, "{BASE}/pets");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(call.headers, pairs(&[("A", "b")]));
        assert_eq!(call.body.as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn java_net_http_with_a_text_block() {
        let code = "String json = \"\"\"\n    {\"a\": \"b\\tc\"}\n    \"\"\";\nHttpRequest request = HttpRequest.newBuilder()\n    .uri(URI.create(\"https://h.test/pets\"))\n    .headers(\"A\", \"1\", \"B\", \"2\")\n    .POST(HttpRequest.BodyPublishers.ofString(json))\n    .build();";
        let call = parse_call("java", code).unwrap();
        assert_eq!(
            (call.method.as_str(), call.url.as_str()),
            ("POST", "https://h.test/pets")
        );
        assert_eq!(call.headers, pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(call.body.as_deref(), Some("{\"a\": \"b\tc\"}\n"));
    }

    #[test]
    fn unirest_and_chains_without_a_url() {
        let code = "HttpResponse<String> response = Unirest.put(\"https://h.test/a\")\n  .header(\"accept\", \"application/json\")\n  .queryString(\"q\", 5)\n  .body(\"{}\")\n  .asString();";
        let call = parse_call("java", code).unwrap();
        assert_eq!(call.method, "PUT");
        assert_eq!(call.query, pairs(&[("q", "5")]));
        assert_eq!(call.body.as_deref(), Some("{}"));
        assert_eq!(
            parse_call("java", "System.out.println(list.get(0).toString());"),
            None
        );
    }

    #[test]
    fn text_blocks_lose_their_incidental_indentation() {
        assert_eq!(string_literal("\"\"\"\n  a\n    b\n  \"\"\""), "a\n  b\n");
        assert_eq!(string_literal("\"\"\"\n  a\n    b\"\"\""), "a\n  b");
    }
}
