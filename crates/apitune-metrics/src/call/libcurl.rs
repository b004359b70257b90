//! C snippets using libcurl, read with tree-sitter-c: the `curl_easy_setopt(handle, CURLOPT_...,
//! value)` calls in order (`CURLOPT_URL`, `CURLOPT_CUSTOMREQUEST`, `CURLOPT_POSTFIELDS`,
//! `CURLOPT_POST` and the like, later settings winning), and the header lines added by
//! `curl_slist_append` to the list given as `CURLOPT_HTTPHEADER`, the shape httpsnippet renders.
//!
//! Names bound by initialised declarations and assignments are followed to their values;
//! adjacent literals (`"a" "b"`) are joined as the compiler joins them.

use tree_sitter::Node;

use super::literal::{Unknown, unescape};
use super::tree::{self, text};
use super::{Bindings, CallParts, HttpCall, MAX_DEPTH};

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    let tree = tree::parse("c", tree_sitter_c::LANGUAGE, code)?;
    let nodes = tree::descendants(tree.root_node());
    let c = C {
        code,
        bindings: bindings(&nodes, code),
    };
    let calls: Vec<(&str, Vec<Node>)> = nodes
        .iter()
        .filter(|node| node.kind() == "call_expression")
        .filter_map(|call| {
            let function = call.child_by_field_name("function")?;
            let args = call.child_by_field_name("arguments")?;
            Some((text(function, code), tree::named_children(args)))
        })
        .collect();
    let mut call = CallParts::default();
    let mut implied = None;
    let mut header_list = None;
    for (function, args) in &calls {
        let ("curl_easy_setopt", [_, option, value, ..]) = (*function, args.as_slice()) else {
            continue;
        };
        match c.text(*option) {
            "CURLOPT_URL" => call.url = Some(c.string_or_placeholder(*value)),
            "CURLOPT_CUSTOMREQUEST" => call.method = c.string(*value),
            "CURLOPT_POSTFIELDS" | "CURLOPT_COPYPOSTFIELDS" => call.body = c.body(*value),
            "CURLOPT_HTTPHEADER" => header_list = Some(c.text(*value)),
            "CURLOPT_POST" if c.truthy(*value) => implied = Some("POST"),
            "CURLOPT_UPLOAD" | "CURLOPT_PUT" if c.truthy(*value) => implied = Some("PUT"),
            "CURLOPT_NOBODY" if c.truthy(*value) => implied = Some("HEAD"),
            "CURLOPT_HTTPGET" if c.truthy(*value) => implied = Some("GET"),
            _ => {}
        }
    }
    if call.method.is_none() {
        call.method = implied.map(str::to_string);
    }
    // A snippet cut off before `CURLOPT_HTTPHEADER` still shows the headers it meant to send.
    for (function, args) in &calls {
        let ("curl_slist_append", [list, line, ..]) = (*function, args.as_slice()) else {
            continue;
        };
        if header_list.is_none_or(|name| name == c.text(*list))
            && let Some(line) = c.string(*line)
        {
            call.header_line(&line);
        }
    }
    call.finish()
}

fn bindings<'t>(nodes: &[Node<'t>], code: &str) -> Bindings<Node<'t>> {
    let mut bindings = Bindings::default();
    for node in nodes {
        let (name, value) = match node.kind() {
            "init_declarator" => ("declarator", "value"),
            "assignment_expression" => ("left", "right"),
            _ => continue,
        };
        let (Some(mut name), Some(value)) = (
            node.child_by_field_name(name),
            node.child_by_field_name(value),
        ) else {
            continue;
        };
        // `char *data`, `char data[]`: the name is inside the declarator.
        for _ in 0..MAX_DEPTH {
            match name.child_by_field_name("declarator") {
                Some(inner) => name = inner,
                None => break,
            }
        }
        if name.kind() == "identifier" {
            bindings.bind(text(name, code), value.start_byte(), value);
        }
    }
    bindings
}

struct C<'t, 'c> {
    code: &'c str,
    bindings: Bindings<Node<'t>>,
}

impl<'t> C<'t, '_> {
    fn text(&self, node: Node) -> &str {
        text(node, self.code)
    }

    fn resolve(&self, mut node: Node<'t>) -> Node<'t> {
        for _ in 0..MAX_DEPTH {
            node = match node.kind() {
                "identifier" => match self.bindings.lookup(self.text(node), node.start_byte()) {
                    Some(value) => value,
                    None => return node,
                },
                "parenthesized_expression" | "cast_expression" => {
                    match node
                        .child_by_field_name("value")
                        .or_else(|| tree::named_children(node).last().copied())
                    {
                        Some(inner) => inner,
                        None => return node,
                    }
                }
                _ => return node,
            };
        }
        node
    }

    /// A string literal's value, or adjacent literals joined (a macro among them as `{NAME}`).
    fn string(&self, node: Node<'t>) -> Option<String> {
        let node = self.resolve(node);
        match node.kind() {
            "string_literal" => {
                let literal = self.text(node);
                // An encoding prefix (`L`, `u8`) comes before the opening quote.
                let body = literal.get(literal.find('"')? + 1..)?;
                Some(unescape(
                    body.strip_suffix('"').unwrap_or(body),
                    Unknown::Drop,
                ))
            }
            "concatenated_string" => Some(
                tree::named_children(node)
                    .into_iter()
                    .map(|part| match part.kind() {
                        "string_literal" => self.string(part).unwrap_or_default(),
                        _ => format!("{{{}}}", self.text(part)),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn string_or_placeholder(&self, node: Node<'t>) -> String {
        self.string(node)
            .unwrap_or_else(|| format!("{{{}}}", self.text(node)))
    }

    fn body(&self, node: Node<'t>) -> Option<String> {
        let resolved = self.resolve(node);
        if matches!(self.text(resolved), "NULL" | "0" | "nullptr") {
            return None;
        }
        Some(
            self.string(resolved)
                .unwrap_or_else(|| self.text(resolved).to_string()),
        )
    }

    fn truthy(&self, node: Node<'t>) -> bool {
        let value = self.text(self.resolve(node)).to_ascii_lowercase();
        !matches!(value.trim_end_matches(['l', 'u']), "0" | "false" | "null")
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_libcurl_shape() {
        assert_reads_httpsnippet_shapes("libcurl");
    }

    #[test]
    fn a_program_with_a_post_flag_a_bound_body_and_joined_literals() {
        let code = "#include <curl/curl.h>\nint main(void) {\n  CURL *curl = curl_easy_init();\n  const char *json = \"{\\\"a\\\":\"\n    \"1}\";\n  struct curl_slist *list = NULL;\n  list = curl_slist_append(list, \"Content-Type: application/json\");\n  other = curl_slist_append(other, \"X: y\");\n  curl_easy_setopt(curl, CURLOPT_URL, \"https://h.test/pets?x=1\");\n  curl_easy_setopt(curl, CURLOPT_POST, 1L);\n  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);\n  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);\n  curl_easy_perform(curl);\n}\n";
        let call = parse_call("libcurl", code).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://h.test/pets");
        assert_eq!(call.query, pairs(&[("x", "1")]));
        assert_eq!(call.headers, pairs(&[("Content-Type", "application/json")]));
        assert_eq!(call.body.as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn no_url_is_no_call() {
        assert_eq!(parse_call("libcurl", "CURL *hnd = curl_easy_init();"), None);
        assert_eq!(parse_call("libcurl", "int main() { return 0; }"), None);
    }
}
