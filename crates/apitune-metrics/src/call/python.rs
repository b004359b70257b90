//! Python snippets, read with ruff's parser (the one the syntax metric uses): `http.client`'s
//! `conn.request(method, path, body, headers)` on an `HTTP(S)Connection`, the shape httpsnippet
//! renders, and `requests` / `httpx` calls (`requests.post(url, ...)`,
//! `requests.request("GET", url, ...)`, and the same on a `Session` / `Client`). The first such
//! call in the snippet counts.
//!
//! The parser recovers from errors, so a snippet cut off after its call still reads. Names bound
//! by simple assignments (`headers = {...}`) and `with ... as name` are followed to their values.

use ruff_python_ast::visitor::source_order::{self, SourceOrderVisitor};
use ruff_python_ast::{
    Expr, ExprCall, FStringPart, InterpolatedStringElement, Number, Operator, PySourceType, Stmt,
    UnaryOp,
};
use ruff_python_parser::parse_unchecked_source;
use ruff_text_size::Ranged;
use serde_json::{Map, Value};

use super::{Bindings, CallParts, HttpCall, MAX_DEPTH, json_text, verb_method};

/// ruff's parser, and the drop of its syntax tree, recurse once per level of nesting: a 2 MiB
/// stack (a test's or rayon's thread) holds about 10 000 levels. No answer is that long, but
/// garbage can nest on every character, so longer inputs are read on a thread whose stack grows
/// with them.
const INLINE_LIMIT: usize = 8 * 1024;

pub(super) fn parse(code: &str) -> Option<HttpCall> {
    if code.len() <= INLINE_LIMIT {
        return read(code);
    }
    let stack = code.len().saturating_mul(512).max(8 << 20);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn_scoped(scope, || read(code))
            .ok()?
            .join()
            .ok()?
    })
}

fn read(code: &str) -> Option<HttpCall> {
    let parsed = parse_unchecked_source(code, PySourceType::Python);
    let mut collect = Collect::default();
    collect.visit_body(&parsed.syntax().body);
    let py = Py {
        code,
        bindings: collect.bindings,
    };
    collect
        .calls
        .into_iter()
        .find_map(|call| py.http_client(call).or_else(|| py.requests(call)))?
        .finish()
}

/// The calls of a module in source order, and its simple bindings.
#[derive(Default)]
struct Collect<'a> {
    calls: Vec<&'a ExprCall>,
    bindings: Bindings<&'a Expr>,
    /// How deep the walk is: garbage such as 2000 nested f-strings would overflow the stack.
    depth: usize,
}

/// Deeper than CPython's parser nests (it stops at 200), so no real snippet is cut short.
const MAX_NESTING: usize = 256;

impl<'a> SourceOrderVisitor<'a> for Collect<'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Assign(assign) => {
                for target in &assign.targets {
                    if let Expr::Name(name) = target {
                        self.bindings
                            .bind(name.id.as_str(), start(&*assign.value), &assign.value);
                    }
                }
            }
            Stmt::AnnAssign(assign) => {
                if let (Expr::Name(name), Some(value)) = (&*assign.target, &assign.value) {
                    self.bindings.bind(name.id.as_str(), start(&**value), value);
                }
            }
            Stmt::With(with) => {
                for item in &with.items {
                    if let Some(Expr::Name(name)) = item.optional_vars.as_deref() {
                        self.bindings.bind(
                            name.id.as_str(),
                            start(&item.context_expr),
                            &item.context_expr,
                        );
                    }
                }
            }
            _ => {}
        }
        if self.depth < MAX_NESTING {
            self.depth += 1;
            source_order::walk_stmt(self, stmt);
            self.depth -= 1;
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr {
            self.calls.push(call);
        }
        if self.depth < MAX_NESTING {
            self.depth += 1;
            source_order::walk_expr(self, expr);
            self.depth -= 1;
        }
    }
}

fn start(node: &impl Ranged) -> usize {
    node.start().to_usize()
}

struct Py<'a> {
    code: &'a str,
    bindings: Bindings<&'a Expr>,
}

impl<'a> Py<'a> {
    fn source(&self, node: &impl Ranged) -> &'a str {
        let range = node.range();
        self.code
            .get(range.start().to_usize()..range.end().to_usize())
            .unwrap_or_default()
    }

    /// `conn.request(method, url, body, headers)` where `conn` is an
    /// `http.client.HTTP(S)Connection(host)`.
    fn http_client(&self, call: &'a ExprCall) -> Option<CallParts> {
        let Expr::Attribute(func) = &*call.func else {
            return None;
        };
        if func.attr.as_str() != "request" {
            return None;
        }
        let Expr::Call(connection) = self.resolve(&func.value) else {
            return None;
        };
        let scheme = match callee_name(&connection.func)? {
            "HTTPSConnection" => "https",
            "HTTPConnection" => "http",
            _ => return None,
        };
        let host = self.string(argument(connection, 0, "host")?)?;
        let port = argument(connection, 1, "port").map(|port| self.scalar(port));
        let origin = match (host.contains("://"), port) {
            (true, _) => host,
            (false, Some(port)) => format!("{scheme}://{host}:{port}"),
            (false, None) => format!("{scheme}://{host}"),
        };
        let path = self.string_or_placeholder(argument(call, 1, "url")?);
        Some(CallParts {
            method: argument(call, 0, "method").and_then(|m| self.string(m)),
            url: Some(if path.contains("://") {
                path
            } else {
                origin + &path
            }),
            headers: argument(call, 3, "headers").map_or_else(Vec::new, |h| self.pairs(h)),
            body: argument(call, 2, "body").and_then(|b| self.body(b)),
            ..CallParts::default()
        })
    }

    /// `requests.get(url, params=..., headers=..., json=..., data=...)` and the other verbs,
    /// `requests.request(method, url, ...)`, the same on `httpx`, and on a `requests.Session()`
    /// or `httpx.Client(base_url=...)` (whose `base_url` prefixes a relative URL).
    fn requests(&self, call: &'a ExprCall) -> Option<CallParts> {
        let Expr::Attribute(func) = &*call.func else {
            return None;
        };
        let base_url = self.client(&func.value)?;
        let verb = func.attr.as_str();
        let mut parts = CallParts::default();
        // The positional parameters after `url` differ per function, as in requests' API.
        let (url_at, positional): (usize, &[&str]) = match verb {
            "request" => {
                parts.method = argument(call, 0, "method").and_then(|m| self.string(m));
                (1, &[])
            }
            "get" => (0, &["params"]),
            "post" => (0, &["data", "json"]),
            "put" | "patch" => (0, &["data"]),
            _ => (0, &[]),
        };
        if verb != "request" {
            parts.method = Some(verb_method(verb)?.to_string());
        }
        let url = self.string_or_placeholder(argument(call, url_at, "url")?);
        parts.url = Some(match base_url {
            Some(base) if !url.contains("://") => base + &url,
            _ => url,
        });
        let named = |name: &str| {
            let at = positional.iter().position(|p| *p == name);
            at.and_then(|at| call.arguments.args.get(url_at + 1 + at))
                .or_else(|| call.arguments.find_keyword(name).map(|k| &k.value))
        };
        parts.query = named("params").map_or_else(Vec::new, |p| self.pairs(p));
        parts.headers = named("headers").map_or_else(Vec::new, |h| self.pairs(h));
        parts.body = ["data", "content"]
            .into_iter()
            .find_map(named)
            .and_then(|data| self.body(data))
            .or_else(|| named("json").and_then(|json| self.json_body(json)));
        Some(parts)
    }

    /// For the receiver of a `requests`-style call: `Some(None)` for the module itself,
    /// `Some(base_url)` for a session or client made from it, `None` for anything else.
    fn client(&self, receiver: &'a Expr) -> Option<Option<String>> {
        if let Expr::Name(name) = receiver
            && matches!(name.id.as_str(), "requests" | "httpx")
        {
            return Some(None);
        }
        let Expr::Call(make) = self.resolve(receiver) else {
            return None;
        };
        let Expr::Attribute(func) = &*make.func else {
            return None;
        };
        let module =
            matches!(&*func.value, Expr::Name(n) if matches!(n.id.as_str(), "requests" | "httpx"));
        let client = matches!(
            func.attr.as_str(),
            "Session" | "session" | "Client" | "AsyncClient"
        );
        (module && client).then(|| {
            make.arguments
                .find_keyword("base_url")
                .and_then(|k| self.string(&k.value))
        })
    }

    /// `expr` with names followed to the values bound to them.
    fn resolve(&self, mut expr: &'a Expr) -> &'a Expr {
        for _ in 0..MAX_DEPTH {
            let Expr::Name(name) = expr else {
                return expr;
            };
            match self.bindings.lookup(name.id.as_str(), start(expr)) {
                Some(value) => expr = value,
                None => return expr,
            }
        }
        expr
    }

    /// The value of a string expression: a literal, an f-string (each `{expr}` kept as
    /// written), or a `+` concatenation holding at least one of them (other operands as
    /// `{expr}`).
    fn string(&self, expr: &'a Expr) -> Option<String> {
        self.string_at(expr, 0)
    }

    fn string_at(&self, expr: &'a Expr, depth: usize) -> Option<String> {
        match self.resolve(expr) {
            Expr::StringLiteral(literal) => Some(literal.value.to_str().to_string()),
            Expr::FString(fstring) => {
                let mut out = String::new();
                for part in fstring.value.iter() {
                    match part {
                        FStringPart::Literal(literal) => out.push_str(literal.as_str()),
                        FStringPart::FString(fstring) => {
                            for element in &fstring.elements {
                                match element {
                                    InterpolatedStringElement::Literal(literal) => {
                                        out.push_str(&literal.value)
                                    }
                                    InterpolatedStringElement::Interpolation(placeholder) => {
                                        out.push_str(self.source(placeholder))
                                    }
                                }
                            }
                        }
                    }
                }
                Some(out)
            }
            Expr::BinOp(binop) if binop.op == Operator::Add && depth < MAX_DEPTH => {
                let left = self.string_at(&binop.left, depth + 1);
                let right = self.string_at(&binop.right, depth + 1);
                if left.is_none() && right.is_none() {
                    return None;
                }
                let part = |value: Option<String>, expr: &Expr| {
                    value.unwrap_or_else(|| format!("{{{}}}", self.source(expr)))
                };
                Some(part(left, &binop.left) + &part(right, &binop.right))
            }
            _ => None,
        }
    }

    /// A URL as a string, or `{expr}` for one that cannot be evaluated.
    fn string_or_placeholder(&self, expr: &'a Expr) -> String {
        self.string(expr)
            .unwrap_or_else(|| format!("{{{}}}", self.source(expr)))
    }

    /// A header or parameter value: a string's value, anything else as written.
    fn scalar(&self, expr: &'a Expr) -> String {
        self.string(expr)
            .unwrap_or_else(|| self.source(self.resolve(expr)).to_string())
    }

    /// `(name, value)` pairs of a dict literal or a list/tuple of 2-tuples.
    fn pairs(&self, expr: &'a Expr) -> Vec<(String, String)> {
        let pair = |key: &'a Expr, value: &'a Expr| (self.scalar(key), self.scalar(value));
        match self.resolve(expr) {
            Expr::Dict(dict) => dict
                .items
                .iter()
                .filter_map(|item| Some(pair(item.key.as_ref()?, &item.value)))
                .collect(),
            Expr::List(ruff_python_ast::ExprList { elts, .. })
            | Expr::Tuple(ruff_python_ast::ExprTuple { elts, .. }) => elts
                .iter()
                .filter_map(|entry| match self.resolve(entry) {
                    Expr::Tuple(t) if t.elts.len() == 2 => Some(pair(&t.elts[0], &t.elts[1])),
                    Expr::List(l) if l.elts.len() == 2 => Some(pair(&l.elts[0], &l.elts[1])),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A `data=` / positional body: a string's value, a dict or list literal (form fields, or
    /// JSON text) or `json.dumps` of one as compact JSON, no body for `None`, anything else as
    /// written.
    fn body(&self, expr: &'a Expr) -> Option<String> {
        let resolved = self.resolve(expr);
        match resolved {
            Expr::NoneLiteral(_) => return None,
            Expr::BytesLiteral(bytes) => {
                let bytes: Vec<u8> = bytes.value.bytes().collect();
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            Expr::Dict(_) | Expr::List(_) => return self.json_body(resolved),
            Expr::Call(call) if self.source(&*call.func) == "json.dumps" => {
                if let Some(value) = call.arguments.args.first() {
                    return self.json_body(value);
                }
            }
            _ => {}
        }
        Some(
            self.string(resolved)
                .unwrap_or_else(|| self.source(resolved).to_string()),
        )
    }

    /// A `json=` body: compact JSON of a literal, anything else as written.
    fn json_body(&self, expr: &'a Expr) -> Option<String> {
        let resolved = self.resolve(expr);
        if matches!(resolved, Expr::NoneLiteral(_)) {
            return None;
        }
        Some(match self.json(resolved, 0) {
            Some(value) => json_text(&value),
            None => self.source(resolved).to_string(),
        })
    }

    /// The JSON value `json.dumps` would write for a literal.
    fn json(&self, expr: &'a Expr, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        Some(match self.resolve(expr) {
            Expr::Dict(dict) => {
                let mut map = Map::new();
                for item in &dict.items {
                    let key = match self.resolve(item.key.as_ref()?) {
                        Expr::StringLiteral(s) => s.value.to_str().to_string(),
                        key @ Expr::NumberLiteral(_) => self.json(key, depth + 1)?.to_string(),
                        _ => return None,
                    };
                    map.insert(key, self.json(&item.value, depth + 1)?);
                }
                Value::Object(map)
            }
            Expr::List(ruff_python_ast::ExprList { elts, .. })
            | Expr::Tuple(ruff_python_ast::ExprTuple { elts, .. }) => Value::Array(
                elts.iter()
                    .map(|e| self.json(e, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            Expr::StringLiteral(s) => Value::String(s.value.to_str().to_string()),
            Expr::NumberLiteral(n) => number(&n.value, false)?,
            Expr::UnaryOp(op) if op.op == UnaryOp::USub => match &*op.operand {
                Expr::NumberLiteral(n) => number(&n.value, true)?,
                _ => return None,
            },
            Expr::BooleanLiteral(b) => Value::Bool(b.value),
            Expr::NoneLiteral(_) => Value::Null,
            _ => return None,
        })
    }
}

fn number(number: &Number, negative: bool) -> Option<Value> {
    match number {
        Number::Int(int) => {
            let value = i64::try_from(int.as_u64()?).ok()?;
            Some(Value::from(if negative { -value } else { value }))
        }
        Number::Float(float) => {
            serde_json::Number::from_f64(if negative { -float } else { *float }).map(Value::Number)
        }
        Number::Complex { .. } => None,
    }
}

/// The last name of a callee: `HTTPSConnection` for `http.client.HTTPSConnection`.
fn callee_name(func: &Expr) -> Option<&str> {
    match func {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(attribute) => Some(attribute.attr.as_str()),
        _ => None,
    }
}

/// A call's argument by position, or by keyword.
fn argument<'a>(call: &'a ExprCall, position: usize, keyword: &str) -> Option<&'a Expr> {
    call.arguments
        .args
        .get(position)
        .or_else(|| call.arguments.find_keyword(keyword).map(|k| &k.value))
}

#[cfg(test)]
mod tests {
    use super::super::parse_call;
    use super::super::test_support::{assert_reads_httpsnippet_shapes, pairs};

    #[test]
    fn reads_httpsnippets_http_client_shape() {
        assert_reads_httpsnippet_shapes("python");
    }

    #[test]
    fn http_client_with_keywords_a_port_and_a_call_cut_off_after() {
        let code = "import http.client\nconn = http.client.HTTPConnection('h.test', 8080)\nconn.request(method='patch', url='/a?b=1', body='{\"x\": 1}', headers={'A': 'b'})\nres = conn.getresp";
        let call = parse_call("python", code).unwrap();
        assert_eq!(call.method, "PATCH");
        assert_eq!(call.url, "http://h.test:8080/a");
        assert_eq!(call.query, pairs(&[("b", "1")]));
        assert_eq!(call.headers, pairs(&[("A", "b")]));
        assert_eq!(call.body.as_deref(), Some("{\"x\": 1}"));
    }

    #[test]
    fn requests_post_with_a_json_dict_params_and_an_f_string_header() {
        let code = r#"import requests

url = "https://api.example.com/v2/pets?tag=a"
headers = {"Authorization": f"Bearer {API_KEY}", "X-Count": 3}
payload = {"name": "Rex\n", "age": 3, "weight": -2.5, "tags": ("a",), "ok": True, "owner": None}

response = requests.post(url, json=payload, headers=headers, params={"limit": 10, "q": query})
print(response.json())
"#;
        let call = parse_call("python", code).unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://api.example.com/v2/pets");
        assert_eq!(
            call.query,
            pairs(&[("tag", "a"), ("limit", "10"), ("q", "query")])
        );
        assert_eq!(
            call.headers,
            pairs(&[("Authorization", "Bearer {API_KEY}"), ("X-Count", "3")])
        );
        assert_eq!(
            call.body.as_deref(),
            Some(r#"{"name":"Rex\n","age":3,"weight":-2.5,"tags":["a"],"ok":true,"owner":null}"#)
        );
    }

    #[test]
    fn requests_variants() {
        let get = parse_call(
            "python",
            "import requests\nr = requests.get(f'{BASE_URL}/pets/{pet_id}', {'x': '1'})",
        )
        .unwrap();
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "{BASE_URL}/pets/{pet_id}")
        );
        assert_eq!(get.query, pairs(&[("x", "1")]));

        let request = parse_call(
            "python",
            "resp = requests.request(\"DELETE\", BASE + '/pets/1', data=json.dumps({'a': [1, 2]}))",
        )
        .unwrap();
        assert_eq!(
            (request.method.as_str(), request.url.as_str()),
            ("DELETE", "{BASE}/pets/1")
        );
        assert_eq!(request.body.as_deref(), Some(r#"{"a":[1,2]}"#));

        let unknown_body = parse_call(
            "python",
            "requests.put('https://h.test/a', data=build_payload(), json=ignored)",
        )
        .unwrap();
        assert_eq!(unknown_body.body.as_deref(), Some("build_payload()"));

        let json_var = parse_call("python", "requests.post('https://h.test/a', json=pet)").unwrap();
        assert_eq!(json_var.body.as_deref(), Some("pet"));

        let session = parse_call(
            "python",
            "with requests.Session() as s:\n    s.head('https://h.test/a', headers=[('A', 'b')])\n",
        )
        .unwrap();
        assert_eq!(session.method, "HEAD");
        assert_eq!(session.headers, pairs(&[("A", "b")]));

        let client = parse_call(
            "python",
            "client = httpx.Client(base_url='https://h.test/v1')\nclient.patch('/pets/1', content=b'raw')",
        )
        .unwrap();
        assert_eq!(
            (client.method.as_str(), client.url.as_str()),
            ("PATCH", "https://h.test/v1/pets/1")
        );
        assert_eq!(client.body.as_deref(), Some("raw"));
    }

    #[test]
    fn garbage_nested_deeper_than_a_thread_stack_holds_is_no_call() {
        for open in ["f'{", "(", "-", "a."] {
            assert_eq!(parse_call("python", &open.repeat(20_000)), None);
        }
    }

    #[test]
    fn other_calls_are_no_call() {
        assert_eq!(parse_call("python", "print('https://h.test')"), None);
        assert_eq!(parse_call("python", "requests.get("), None);
        assert_eq!(parse_call("python", "foo.request('GET', '/a')"), None);
        assert_eq!(parse_call("python", "def f(:\n  pass"), None);
    }
}
