//! The HTTP request an operation stands for, independent of the language it is written in.

/// Body of a request: its media type and its text as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub media_type: String,
    pub text: String,
    /// The body as a JSON value when it is JSON (node's `request` writes it as an object).
    pub json: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Upper-case method.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host, with port if any.
    pub host: String,
    /// Path part of the server URL (`/v1`), no trailing slash.
    pub base_path: String,
    /// Path template from the spec (`/books/{bookId}`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

impl HttpRequest {
    /// Server base path + path, with template braces percent-encoded (`%7BbookId%7D`) as
    /// httpsnippet leaves them.
    pub fn encoded_path(&self) -> String {
        let joined = format!("{}{}", self.base_path, self.path);
        let joined = if joined.is_empty() {
            "/".to_string()
        } else {
            joined
        };
        percent_encode(&joined, |c| {
            c.is_ascii_alphanumeric() || "-._~/:@!$&'()*+,;=%".contains(c)
        })
    }

    pub fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Path and query, as sent on the request line.
    pub fn path_and_query(&self) -> String {
        let path = self.encoded_path();
        if self.query.is_empty() {
            path
        } else {
            format!("{path}?{}", self.query_string())
        }
    }

    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path_and_query())
    }

    /// URL without the query string (node's `request` passes the query as `qs`).
    pub fn url_without_query(&self) -> String {
        format!("{}{}", self.origin(), self.encoded_path())
    }

    /// Headers including the body's Content-Type.
    pub fn all_headers(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        if let Some(body) = &self.body
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".to_string(), body.media_type.clone()));
        }
        headers
    }
}

fn percent_encode(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let mut buffer = [0u8; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// Percent-encodes a query name or value (unreserved characters kept).
pub fn encode_component(text: &str) -> String {
    percent_encode(text, |c| c.is_ascii_alphanumeric() || "-._~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_are_percent_encoded_like_httpsnippet() {
        let request = HttpRequest {
            method: "GET".into(),
            scheme: "https".into(),
            host: "api.test".into(),
            base_path: "/v1".into(),
            path: "/books/{bookId}".into(),
            query: vec![("q".into(), "a b&c".into())],
            headers: vec![],
            body: None,
        };
        assert_eq!(
            request.url(),
            "https://api.test/v1/books/%7BbookId%7D?q=a%20b%26c"
        );
    }
}
