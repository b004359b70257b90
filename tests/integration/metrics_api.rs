//! API Pack endpoint extraction and matching on httpsnippet-shaped code.

use apitune::metrics::api_match::{
    EndpointSet, SnippetLang, api_match, extract_call, extract_method, extract_url,
    path_matches_template, split_url,
};

fn samples() -> Vec<(SnippetLang, &'static str, &'static str, &'static str)> {
    // (lang, code, expected URL as written, expected method)
    vec![
        (
            SnippetLang::Curl,
            "curl --request POST \\\n  --url 'https://api.example.com/v1/pets?x=1' \\\n  --header 'content-type: application/json' \\\n  --data '{\"a\":1}'",
            "https://api.example.com/v1/pets?x=1",
            "POST",
        ),
        (
            SnippetLang::Curl,
            "curl --request GET \\\n  --url https://api.example.com/v1/pets/%7Bid%7D",
            "https://api.example.com/v1/pets/%7Bid%7D",
            "GET",
        ),
        (
            SnippetLang::Python,
            "import http.client\n\nconn = http.client.HTTPSConnection(\"api.example.com\")\n\nconn.request(\"DELETE\", \"/v1/pets/42\", headers=headers)\n",
            "api.example.com/v1/pets/42",
            "DELETE",
        ),
        (
            SnippetLang::Java,
            "Request request = new Request.Builder()\n  .url(\"https://api.example.com/v1/pets\")\n  .post(body)\n  .build();",
            "https://api.example.com/v1/pets",
            "POST",
        ),
        (
            SnippetLang::Java,
            "Request request = new Request.Builder()\n  .url(\"https://api.example.com/v1/pets\")\n  .method(\"PATCH\", body)\n  .build();",
            "https://api.example.com/v1/pets",
            "PATCH",
        ),
        (
            SnippetLang::Go,
            "package main\n\nfunc main() {\n\turl := \"https://api.example.com/v1/pets\"\n\treq, _ := http.NewRequest(\"PUT\", url, payload)\n}",
            "https://api.example.com/v1/pets",
            "PUT",
        ),
        (
            SnippetLang::JavaScript,
            "const xhr = new XMLHttpRequest();\nxhr.open(\"GET\", \"https://api.example.com/v1/pets\");\nxhr.send(data);",
            "https://api.example.com/v1/pets",
            "GET",
        ),
        (
            SnippetLang::Node,
            "const options = {\n  method: 'POST',\n  url: 'https://api.example.com/v1/pets',\n  headers: {}\n};",
            "https://api.example.com/v1/pets",
            "POST",
        ),
        (
            SnippetLang::Node,
            "const options = {\n  \"method\": \"GET\",\n  \"hostname\": \"api.example.com\",\n  \"port\": null,\n  \"path\": \"/v1/pets\",\n};",
            "api.example.com/v1/pets",
            "GET",
        ),
        (
            SnippetLang::Ruby,
            "url = URI(\"https://api.example.com/v1/pets\")\n\nrequest = Net::HTTP::Delete.new(url)",
            "https://api.example.com/v1/pets",
            "DELETE",
        ),
        (
            SnippetLang::Php,
            "<?php\ncurl_setopt_array($curl, [\n  CURLOPT_URL => \"https//weatherapi.p.rapidapi.com/forecast?q=London\",\n  CURLOPT_CUSTOMREQUEST => \"GET\",\n]);",
            "https//weatherapi.p.rapidapi.com/forecast?q=London",
            "GET",
        ),
        (
            SnippetLang::Swift,
            "let request = NSMutableURLRequest(url: NSURL(string: \"https://api.example.com/v1/pets\")! as URL,\n  cachePolicy: .useProtocolCachePolicy, timeoutInterval: 10.0)\nrequest.httpMethod = \"POST\"",
            "https://api.example.com/v1/pets",
            "POST",
        ),
        (
            SnippetLang::Libcurl,
            "CURL *hnd = curl_easy_init();\ncurl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, \"PUT\");\ncurl_easy_setopt(hnd, CURLOPT_URL, \"https://api.example.com/v1/pets\");",
            "https://api.example.com/v1/pets",
            "PUT",
        ),
    ]
}

#[test]
fn extracts_url_and_method_from_every_snippet_shape() {
    for (lang, code, url, method) in samples() {
        assert_eq!(
            extract_url(code, lang).as_deref(),
            Some(url),
            "{lang:?}: {code}"
        );
        assert_eq!(
            extract_method(code, lang).as_deref(),
            Some(method),
            "{lang:?}: {code}"
        );
    }
}

#[test]
fn prose_without_a_url_extracts_nothing() {
    for lang in SnippetLang::ALL {
        assert_eq!(
            extract_url("I cannot help with that request.", lang),
            None,
            "{lang:?}"
        );
        assert_eq!(
            extract_method("I cannot help with that request.", lang),
            None,
            "{lang:?}"
        );
    }
}

#[test]
fn splits_urls_including_broken_schemes() {
    let p = split_url("https//Weather.p.rapidapi.com/forecast/%7Bcity%7D?q=1#x");
    assert_eq!(p.host.as_deref(), Some("weather.p.rapidapi.com"));
    assert_eq!(p.path, "/forecast/{city}");
    let p = split_url("api.example.com");
    assert_eq!(
        (p.host.as_deref(), p.path.as_str()),
        (Some("api.example.com"), "/")
    );
    let p = split_url("/v1/pets");
    assert_eq!((p.host, p.path.as_str()), (None, "/v1/pets"));
}

#[test]
fn matches_concrete_paths_against_templates() {
    assert!(path_matches_template("/pets/123", "/pets/{id}"));
    assert!(
        path_matches_template("/v1/pets/123", "/pets/{id}"),
        "server base path allowed"
    );
    assert!(path_matches_template("/pets/%7BpetId%7D", "/pets/{id}"));
    assert!(path_matches_template(
        "/files/report.json",
        "/files/{name}.{ext}"
    ));
    assert!(!path_matches_template(
        "/files/report",
        "/files/{name}.{ext}"
    ));
    assert!(!path_matches_template("/pets", "/pets/{id}"));
    assert!(!path_matches_template("/owners/123", "/pets/{id}"));
    assert!(!path_matches_template("/pets/1/toys", "/pets/{id}"));
    assert!(path_matches_template("/", "/"));
    assert!(!path_matches_template("/pets", "/"));
}

#[test]
fn endpoint_and_call_match_follow_api_pack() {
    let gold = "curl --request GET \\\n  --url 'https://api.example.com/v1/pets/%7Bid%7D' \\\n  --header 'accept: application/json'";
    let m = api_match(gold, gold, SnippetLang::Curl, None);
    assert_eq!(m.endpoint_match, Some(true));
    assert_eq!(m.api_call_match, Some(true));
    assert_eq!(m.method_path_match, Some(true));
    assert_eq!(m.host_match, Some(true));
    assert_eq!(m.url_ratio, Some(1.0));

    let concrete = gold.replace("%7Bid%7D", "12");
    let m = api_match(&concrete, gold, SnippetLang::Curl, None);
    assert_eq!(
        m.method_path_match,
        Some(true),
        "a concrete id fills the placeholder"
    );

    let other_host = gold.replace("api.example.com", "evil.example.org");
    let m = api_match(&other_host, gold, SnippetLang::Curl, None);
    assert_eq!(m.host_match, Some(false));
    assert_eq!(m.method_path_match, Some(true));

    let post = gold.replace("GET", "DELETE");
    let m = api_match(&post, gold, SnippetLang::Curl, None);
    assert_eq!(m.method_path_match, Some(false));
    assert_eq!(
        m.endpoint_match,
        Some(true),
        "endpoint match compares URLs only"
    );

    let m = api_match("Sorry, no.", gold, SnippetLang::Curl, None);
    assert_eq!(m.endpoint_match, Some(false));
    assert_eq!(m.url_ratio, Some(0.0));

    let m = api_match(gold, "no url here", SnippetLang::Curl, None);
    assert_eq!(
        m.endpoint_match, None,
        "metric does not apply without a reference URL"
    );
}

#[test]
fn hallucinated_endpoints_are_those_the_api_lacks() {
    let api = EndpointSet::new([("GET", "/pets/{id}"), ("POST", "/pets"), ("GET", "/owners")]);
    let gold = "curl --request GET --url https://api.example.com/v1/pets/1";
    let known = |code: &str| api_match(code, gold, SnippetLang::Curl, Some(&api)).hallucinated;
    assert_eq!(
        known("curl --request GET --url https://api.example.com/v1/pets/77"),
        Some(false)
    );
    assert_eq!(
        known("curl --request POST --url https://api.example.com/v1/pets --data '{}'"),
        Some(false)
    );
    assert_eq!(
        known("curl --request DELETE --url https://api.example.com/v1/pets/77"),
        Some(true)
    );
    assert_eq!(
        known("curl --request GET --url https://api.example.com/v1/vets/77"),
        Some(true)
    );
    assert_eq!(known("no call at all"), None);
    assert_eq!(
        extract_method(
            "curl https://a.example.com/x --header 'X-Api-Key: 1' -XDELETE",
            SnippetLang::Curl
        )
        .as_deref(),
        Some("DELETE")
    );
    assert_eq!(
        extract_method(
            "curl https://a.example.com/x --header 'Ab-X-Y: 1'",
            SnippetLang::Curl
        )
        .as_deref(),
        Some("GET"),
        "a header name containing -X is not a method flag"
    );
    let call = extract_call(
        "curl -X GET 'https://api.example.com/v1/owners?x=1'",
        SnippetLang::Curl,
    )
    .unwrap();
    assert_eq!(call.path, "/v1/owners");
    assert!(api.contains(call.method.as_deref(), &call.path));
}
