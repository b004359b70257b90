//! Snippets for one request in each target language, in the shapes httpsnippet gives API Pack
//! (Guo et al. 2024, arXiv 2402.09615): curl with `--request/--url/--header/--data`, Python
//! `http.client`, browser `XMLHttpRequest`, Node `request`, Go `package main`, Java OkHttp
//! statements, Ruby `Net::HTTP`, PHP `curl_setopt_array`, Swift `NSMutableURLRequest`, libcurl
//! statements.

use super::request::HttpRequest;

/// The snippet for `lang` (a canonical language), or `None` for a language without a generator.
pub fn render(lang: &str, request: &HttpRequest) -> Option<String> {
    Some(match lang {
        "curl" => curl(request),
        "python" => python(request),
        "javascript" => javascript_xhr(request),
        "node" => node_request(request),
        "go" => go(request),
        "java" => java_okhttp(request),
        "ruby" => ruby(request),
        "php" => php(request),
        "swift" => swift(request),
        "libcurl" => libcurl(request),
        _ => return None,
    })
}

/// A double-quoted literal with JSON escapes: valid in Python, JS, Go, Java, C and Swift for the
/// text that specs carry.
fn dq(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

fn single_quoted(text: &str) -> String {
    format!(
        "'{}'",
        text.replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('\n', "\\n")
    )
}

fn shell_quoted(text: &str) -> String {
    let safe = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn curl(request: &HttpRequest) -> String {
    let mut lines = vec![
        format!("curl --request {}", request.method),
        format!("  --url {}", shell_quoted(&request.url())),
    ];
    for (name, value) in request.all_headers() {
        lines.push(format!(
            "  --header {}",
            shell_quoted(&format!("{name}: {value}"))
        ));
    }
    if let Some(body) = &request.body {
        lines.push(format!("  --data {}", shell_quoted(&body.text)));
    }
    lines.join(" \\\n")
}

fn python(request: &HttpRequest) -> String {
    let connection = if request.scheme == "http" {
        "HTTPConnection"
    } else {
        "HTTPSConnection"
    };
    let mut out = format!(
        "import http.client\n\nconn = http.client.{connection}({})\n\n",
        dq(&request.host)
    );
    if let Some(body) = &request.body {
        out.push_str(&format!("payload = {}\n\n", dq(&body.text)));
    }
    let headers = request.all_headers();
    if !headers.is_empty() {
        out.push_str("headers = {\n");
        let entries: Vec<String> = headers
            .iter()
            .map(|(name, value)| format!("    {}: {}", single_quoted(name), dq(value)))
            .collect();
        out.push_str(&entries.join(",\n"));
        out.push_str("\n    }\n\n");
    }
    // httpsnippet's python3 target: positional payload when there is one, `headers=` otherwise.
    let arguments = match (request.body.is_some(), headers.is_empty()) {
        (true, false) => ", payload, headers".to_string(),
        (true, true) => ", payload".to_string(),
        (false, false) => ", headers=headers".to_string(),
        (false, true) => String::new(),
    };
    out.push_str(&format!(
        "conn.request({}, {}{arguments})\n\n",
        dq(&request.method),
        dq(&request.path_and_query())
    ));
    out.push_str("res = conn.getresponse()\ndata = res.read()\n\nprint(data.decode(\"utf-8\"))");
    out
}

fn javascript_xhr(request: &HttpRequest) -> String {
    let mut out = match &request.body {
        Some(body) => match &body.json {
            Some(json) => format!(
                "const data = JSON.stringify({});\n\n",
                serde_json::to_string_pretty(json).unwrap_or_else(|_| "null".into())
            ),
            None => format!("const data = {};\n\n", dq(&body.text)),
        },
        None => "const data = null;\n\n".to_string(),
    };
    out.push_str(
        "const xhr = new XMLHttpRequest();\nxhr.withCredentials = true;\n\n\
         xhr.addEventListener(\"readystatechange\", function () {\n  if (this.readyState === this.DONE) {\n    console.log(this.responseText);\n  }\n});\n\n",
    );
    out.push_str(&format!(
        "xhr.open({}, {});\n",
        dq(&request.method),
        dq(&request.url())
    ));
    for (name, value) in request.all_headers() {
        out.push_str(&format!(
            "xhr.setRequestHeader({}, {});\n",
            dq(&name),
            dq(&value)
        ));
    }
    out.push_str("\nxhr.send(data);");
    out
}

fn js_object_entries(entries: &[(String, String)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(name, value)| format!("{}: {}", single_quoted(name), single_quoted(value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn node_request(request: &HttpRequest) -> String {
    let mut options = vec![
        format!("  method: {}", single_quoted(&request.method)),
        format!("  url: {}", single_quoted(&request.url_without_query())),
    ];
    if !request.query.is_empty() {
        options.push(format!("  qs: {}", js_object_entries(&request.query)));
    }
    let headers = request.all_headers();
    if !headers.is_empty() {
        options.push(format!("  headers: {}", js_object_entries(&headers)));
    }
    if let Some(body) = &request.body {
        match &body.json {
            Some(json) => {
                options.push(format!(
                    "  body: {}",
                    serde_json::to_string(json).unwrap_or_else(|_| "null".into())
                ));
                options.push("  json: true".to_string());
            }
            None => options.push(format!("  body: {}", single_quoted(&body.text))),
        }
    }
    format!(
        "const request = require('request');\n\nconst options = {{\n{}\n}};\n\n\
         request(options, function (error, response, body) {{\n  if (error) throw new Error(error);\n\n  console.log(body);\n}});",
        options.join(",\n")
    )
}

fn go(request: &HttpRequest) -> String {
    let imports = if request.body.is_some() {
        "import (\n\t\"fmt\"\n\t\"strings\"\n\t\"net/http\"\n\t\"io/ioutil\"\n)"
    } else {
        "import (\n\t\"fmt\"\n\t\"net/http\"\n\t\"io/ioutil\"\n)"
    };
    let mut out = format!(
        "package main\n\n{imports}\n\nfunc main() {{\n\n\turl := {}\n\n",
        dq(&request.url())
    );
    match &request.body {
        Some(body) => {
            out.push_str(&format!(
                "\tpayload := strings.NewReader({})\n\n",
                dq(&body.text)
            ));
            out.push_str(&format!(
                "\treq, _ := http.NewRequest({}, url, payload)\n\n",
                dq(&request.method)
            ));
        }
        None => out.push_str(&format!(
            "\treq, _ := http.NewRequest({}, url, nil)\n\n",
            dq(&request.method)
        )),
    }
    let headers = request.all_headers();
    for (name, value) in &headers {
        out.push_str(&format!("\treq.Header.Add({}, {})\n", dq(name), dq(value)));
    }
    if !headers.is_empty() {
        out.push('\n');
    }
    out.push_str(
        "\tres, _ := http.DefaultClient.Do(req)\n\n\tdefer res.Body.Close()\n\tbody, _ := ioutil.ReadAll(res.Body)\n\n\
         \tfmt.Println(res)\n\tfmt.Println(string(body))\n\n}",
    );
    out
}

fn java_okhttp(request: &HttpRequest) -> String {
    let mut out = String::from("OkHttpClient client = new OkHttpClient();\n\n");
    let has_body = request.body.is_some();
    if let Some(body) = &request.body {
        out.push_str(&format!(
            "MediaType mediaType = MediaType.parse({});\n",
            dq(&body.media_type)
        ));
        out.push_str(&format!(
            "RequestBody body = RequestBody.create(mediaType, {});\n",
            dq(&body.text)
        ));
    }
    out.push_str(&format!(
        "Request request = new Request.Builder()\n  .url({})\n",
        dq(&request.url())
    ));
    let body_arg = if has_body { "body" } else { "null" };
    let call = match request.method.as_str() {
        "GET" => ".get()".to_string(),
        "HEAD" => ".head()".to_string(),
        "POST" => format!(".post({body_arg})"),
        "PUT" => format!(".put({body_arg})"),
        "PATCH" => format!(".patch({body_arg})"),
        "DELETE" => format!(".delete({body_arg})"),
        other => format!(".method({}, {body_arg})", dq(other)),
    };
    out.push_str(&format!("  {call}\n"));
    for (name, value) in request.all_headers() {
        out.push_str(&format!("  .addHeader({}, {})\n", dq(&name), dq(&value)));
    }
    out.push_str("  .build();\n\nResponse response = client.newCall(request).execute();");
    out
}

fn ruby_dq(text: &str) -> String {
    dq(text)
        .replace("#{", "\\#{")
        .replace("#@", "\\#@")
        .replace("#$", "\\#$")
}

fn ruby(request: &HttpRequest) -> String {
    let mut out = String::from("require 'uri'\nrequire 'net/http'\n");
    if request.scheme == "https" {
        out.push_str("require 'openssl'\n");
    }
    out.push_str(&format!(
        "\nurl = URI({})\n\nhttp = Net::HTTP.new(url.host, url.port)\n",
        ruby_dq(&request.url())
    ));
    if request.scheme == "https" {
        out.push_str("http.use_ssl = true\nhttp.verify_mode = OpenSSL::SSL::VERIFY_NONE\n");
    }
    let class = {
        let lower = request.method.to_ascii_lowercase();
        let mut chars = lower.chars();
        match chars.next() {
            Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
            None => "Get".to_string(),
        }
    };
    out.push_str(&format!("\nrequest = Net::HTTP::{class}.new(url)\n"));
    for (name, value) in request.all_headers() {
        out.push_str(&format!(
            "request[{}] = {}\n",
            ruby_dq(&name),
            single_quoted(&value)
        ));
    }
    if let Some(body) = &request.body {
        out.push_str(&format!("request.body = {}\n", ruby_dq(&body.text)));
    }
    out.push_str("\nresponse = http.request(request)\nputs response.read_body");
    out
}

fn php_dq(text: &str) -> String {
    dq(text).replace('$', "\\$")
}

fn php(request: &HttpRequest) -> String {
    let mut options = vec![
        format!("  CURLOPT_URL => {}", php_dq(&request.url())),
        "  CURLOPT_RETURNTRANSFER => true".to_string(),
        "  CURLOPT_ENCODING => \"\"".to_string(),
        "  CURLOPT_MAXREDIRS => 10".to_string(),
        "  CURLOPT_TIMEOUT => 30".to_string(),
        "  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1".to_string(),
        format!("  CURLOPT_CUSTOMREQUEST => {}", php_dq(&request.method)),
    ];
    if let Some(body) = &request.body {
        options.push(format!("  CURLOPT_POSTFIELDS => {}", php_dq(&body.text)));
    }
    let headers = request.all_headers();
    if !headers.is_empty() {
        let lines: Vec<String> = headers
            .iter()
            .map(|(name, value)| format!("    {}", php_dq(&format!("{name}: {value}"))))
            .collect();
        options.push(format!(
            "  CURLOPT_HTTPHEADER => [\n{}\n  ]",
            lines.join(",\n")
        ));
    }
    format!(
        "<?php\n\n$curl = curl_init();\n\ncurl_setopt_array($curl, [\n{},\n]);\n\n\
         $response = curl_exec($curl);\n$err = curl_error($curl);\n\ncurl_close($curl);\n\n\
         if ($err) {{\n  echo \"cURL Error #:\" . $err;\n}} else {{\n  echo $response;\n}}",
        options.join(",\n")
    )
}

fn swift(request: &HttpRequest) -> String {
    let mut out = String::from("import Foundation\n\n");
    let headers = request.all_headers();
    if !headers.is_empty() {
        let entries: Vec<String> = headers
            .iter()
            .map(|(name, value)| format!("  {}: {}", dq(name), dq(value)))
            .collect();
        out.push_str(&format!("let headers = [\n{}\n]\n", entries.join(",\n")));
    }
    if let Some(body) = &request.body {
        out.push_str(&format!(
            "\nlet postData = NSData(data: {}.data(using: String.Encoding.utf8)!)\n",
            dq(&body.text)
        ));
    }
    out.push_str(&format!(
        "\nlet request = NSMutableURLRequest(url: NSURL(string: {})! as URL,\n                                        cachePolicy: .useProtocolCachePolicy,\n                                    timeoutInterval: 10.0)\n",
        dq(&request.url())
    ));
    out.push_str(&format!("request.httpMethod = {}\n", dq(&request.method)));
    if !headers.is_empty() {
        out.push_str("request.allHTTPHeaderFields = headers\n");
    }
    if request.body.is_some() {
        out.push_str("request.httpBody = postData as Data\n");
    }
    out.push_str(
        "\nlet session = URLSession.shared\n\
         let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in\n  \
         if (error != nil) {\n    print(error as Any)\n  } else {\n    let httpResponse = response as? HTTPURLResponse\n    print(httpResponse)\n  }\n})\n\n\
         dataTask.resume()",
    );
    out
}

fn libcurl(request: &HttpRequest) -> String {
    let mut out = String::from("CURL *hnd = curl_easy_init();\n\n");
    out.push_str(&format!(
        "curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, {});\n",
        dq(&request.method)
    ));
    out.push_str(&format!(
        "curl_easy_setopt(hnd, CURLOPT_URL, {});\n",
        dq(&request.url())
    ));
    let headers = request.all_headers();
    if !headers.is_empty() {
        out.push_str("\nstruct curl_slist *headers = NULL;\n");
        for (name, value) in &headers {
            out.push_str(&format!(
                "headers = curl_slist_append(headers, {});\n",
                dq(&format!("{name}: {value}"))
            ));
        }
        out.push_str("curl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);\n");
    }
    if let Some(body) = &request.body {
        out.push_str(&format!(
            "\ncurl_easy_setopt(hnd, CURLOPT_POSTFIELDS, {});\n",
            dq(&body.text)
        ));
    }
    out.push_str("\nCURLcode ret = curl_easy_perform(hnd);");
    out
}

#[cfg(test)]
mod tests {
    use super::super::request::{Body, HttpRequest};
    use super::*;
    use crate::code_facts::{infer_host, infer_method};
    use crate::lang::TARGET_LANGS;

    fn post_request() -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.bookshop.test".into(),
            base_path: "/v2".into(),
            path: "/books/{bookId}/reviews".into(),
            query: vec![("notify".into(), "SOME_BOOLEAN_VALUE".into())],
            headers: vec![("X-Api-Key".into(), "REPLACE_KEY_VALUE".into())],
            body: Some(Body {
                media_type: "application/json".into(),
                text: r#"{"stars":5,"text":"it's $5"}"#.into(),
                json: Some(serde_json::json!({"stars": 5, "text": "it's $5"})),
            }),
        }
    }

    #[test]
    fn curl_shape() {
        assert_eq!(
            render("curl", &post_request()).unwrap(),
            "curl --request POST \\\n  --url 'https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE' \\\n  --header 'X-Api-Key: REPLACE_KEY_VALUE' \\\n  --header 'content-type: application/json' \\\n  --data '{\"stars\":5,\"text\":\"it'\\''s $5\"}'"
        );
    }

    #[test]
    fn every_language_names_method_host_and_key() {
        let request = post_request();
        for lang in TARGET_LANGS {
            let code = render(lang, &request).unwrap();
            assert_eq!(
                infer_method(&code).as_deref(),
                Some("POST"),
                "{lang}:\n{code}"
            );
            assert_eq!(
                infer_host(&code).as_deref(),
                Some("api.bookshop.test"),
                "{lang}:\n{code}"
            );
            assert!(code.contains("REPLACE_KEY_VALUE"), "{lang}");
            assert!(code.contains("%7BbookId%7D"), "{lang}");
        }
        assert!(render("php", &request).unwrap().contains("it's \\$5"));
        assert!(render("kotlin", &request).is_none());
    }
}
