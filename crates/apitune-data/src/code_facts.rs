//! Best-effort recovery of the HTTP method and host from a snippet. API Pack has no method or host
//! field: both live only inside the code, in the shapes httpsnippet emits. `None` when not found.

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
];

/// Markers after which a snippet names its method, per httpsnippet target. The method is the
/// first word (letters only) after the marker, skipping quotes and spaces.
const METHOD_MARKERS: [&str; 10] = [
    "--request ",                // curl
    "-X ",                       // curl short form
    "CURLOPT_CUSTOMREQUEST, ",   // libcurl
    "CURLOPT_CUSTOMREQUEST => ", // php
    "conn.request(",             // python http.client
    "xhr.open(",                 // javascript xhr
    "method: ",                  // node request
    "http.NewRequest(",          // go
    "httpMethod = ",             // swift
    ".method(",                  // java okhttp
];

/// Upper-case HTTP method named in `code`, if one of the known snippet shapes is recognised.
pub fn infer_method(code: &str) -> Option<String> {
    for marker in METHOD_MARKERS {
        if let Some(found) = code.find(marker) {
            let rest = code[found + marker.len()..].trim_start_matches(['"', '\'', ' ', '`']);
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let upper = word.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                return Some(upper);
            }
        }
    }
    // Ruby `Net::HTTP::Get.new`, Java OkHttp `.get()` / `.post(body)`.
    if let Some(found) = code.find("Net::HTTP::") {
        let word: String = code[found + 11..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let upper = word.to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            return Some(upper);
        }
    }
    if code.contains("Request.Builder()") {
        for method in METHODS {
            if code.contains(&format!(".{}(", method.to_ascii_lowercase())) {
                return Some(method.to_string());
            }
        }
    }
    None
}

/// Host named in `code`: after `http://`, `https://`, RapidAPI's broken `https//`, or in Python's
/// `HTTPSConnection("host")`. Lower-cased, port kept.
pub fn infer_host(code: &str) -> Option<String> {
    let mut candidates: Vec<usize> = Vec::new();
    for scheme in ["https://", "http://", "https//", "http//"] {
        if let Some(found) = code.find(scheme) {
            candidates.push(found + scheme.len());
        }
    }
    for constructor in ["HTTPSConnection(", "HTTPConnection("] {
        if let Some(found) = code.find(constructor) {
            candidates.push(found + constructor.len());
        }
    }
    let start = candidates.into_iter().min()?;
    let host: String = code[start..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        .collect();
    let host = host.trim_end_matches([':', '.']).to_ascii_lowercase();
    (!host.is_empty() && host.contains(|c: char| c.is_ascii_alphanumeric())).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_from_httpsnippet_shapes() {
        assert_eq!(
            infer_method("curl --request POST \\\n  --url x").as_deref(),
            Some("POST")
        );
        assert_eq!(
            infer_method("conn.request(\"GET\", \"/a\")").as_deref(),
            Some("GET")
        );
        assert_eq!(
            infer_method("request = Net::HTTP::Delete.new(url)").as_deref(),
            Some("DELETE")
        );
        assert_eq!(
            infer_method("Request request = new Request.Builder()\n  .url(\"u\")\n  .get()\n")
                .as_deref(),
            Some("GET")
        );
        assert_eq!(infer_method("print('hello')"), None);
    }

    #[test]
    fn hosts_including_rapidapi_broken_scheme() {
        assert_eq!(
            infer_host("--url 'https//api.Example.com/v1'").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            infer_host("conn = http.client.HTTPSConnection(\"books.test:8443\")").as_deref(),
            Some("books.test:8443")
        );
        assert_eq!(infer_host("no url here"), None);
    }
}
