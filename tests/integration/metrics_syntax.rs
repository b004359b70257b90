//! Syntax correctness per language: valid httpsnippet-shaped code, truncated code, fenced answers
//! and English prose.

use apitune::metrics::api_match::SnippetLang;
use apitune::metrics::syntax::{Failure, Verdict, check, check_label};

const PROSE: &str = "Here is the code you asked for. It calls the endpoint and prints the result";

fn valid(lang: SnippetLang) -> &'static str {
    match lang {
        SnippetLang::Curl => {
            "curl --request GET \\\n  --url 'https://api.example.com/v1/pets?limit=10' \\\n  --header 'X-RapidAPI-Key: SOME_STRING_VALUE'"
        }
        SnippetLang::Python => {
            "import http.client\n\nconn = http.client.HTTPSConnection(\"api.example.com\")\nheaders = { 'x-key': \"REPLACE_KEY_VALUE\" }\nconn.request(\"GET\", \"/v1/pets/%7Bid%7D\", headers=headers)\nres = conn.getresponse()\nprint(res.read().decode(\"utf-8\"))"
        }
        SnippetLang::Java => {
            "OkHttpClient client = new OkHttpClient();\n\nRequest request = new Request.Builder()\n  .url(\"https://api.example.com/v1/pets\")\n  .get()\n  .addHeader(\"accept\", \"application/json\")\n  .build();\n\nResponse response = client.newCall(request).execute();"
        }
        SnippetLang::Go => {
            "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n\t\"io\"\n)\n\nfunc main() {\n\turl := \"https://api.example.com/v1/pets\"\n\treq, _ := http.NewRequest(\"GET\", url, nil)\n\tres, _ := http.DefaultClient.Do(req)\n\tdefer res.Body.Close()\n\tbody, _ := io.ReadAll(res.Body)\n\tfmt.Println(string(body))\n}"
        }
        SnippetLang::JavaScript => {
            "const data = null;\n\nconst xhr = new XMLHttpRequest();\nxhr.withCredentials = true;\nxhr.addEventListener(\"readystatechange\", function () {\n  if (this.readyState === this.DONE) {\n    console.log(this.responseText);\n  }\n});\nxhr.open(\"GET\", \"https://api.example.com/v1/pets\");\nxhr.send(data);"
        }
        SnippetLang::Node => {
            "const request = require('request');\n\nconst options = {\n  method: 'GET',\n  url: 'https://api.example.com/v1/pets',\n  headers: {accept: 'application/json'}\n};\n\nrequest(options, function (error, response, body) {\n  if (error) throw new Error(error);\n  console.log(body);\n});"
        }
        SnippetLang::Ruby => {
            "require 'uri'\nrequire 'net/http'\n\nurl = URI(\"https://api.example.com/v1/pets\")\n\nhttp = Net::HTTP.new(url.host, url.port)\nhttp.use_ssl = true\n\nrequest = Net::HTTP::Get.new(url)\nrequest[\"accept\"] = 'application/json'\n\nresponse = http.request(request)\nputs response.read_body"
        }
        SnippetLang::Php => {
            "<?php\n\n$curl = curl_init();\n\ncurl_setopt_array($curl, [\n  CURLOPT_URL => \"https://api.example.com/v1/pets\",\n  CURLOPT_RETURNTRANSFER => true,\n  CURLOPT_CUSTOMREQUEST => \"GET\",\n]);\n\n$response = curl_exec($curl);\n$err = curl_error($curl);\n\ncurl_close($curl);\n\nif ($err) {\n  echo \"cURL Error #:\" . $err;\n} else {\n  echo $response;\n}"
        }
        SnippetLang::Swift => {
            "import Foundation\n\nlet request = NSMutableURLRequest(url: NSURL(string: \"https://api.example.com/v1/pets\")! as URL,\n                                        cachePolicy: .useProtocolCachePolicy,\n                                    timeoutInterval: 10.0)\nrequest.httpMethod = \"GET\"\n\nlet session = URLSession.shared\nlet dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in\n  if (error != nil) {\n    print(error as Any)\n  } else {\n    let httpResponse = response as? HTTPURLResponse\n    print(httpResponse)\n  }\n})\n\ndataTask.resume()"
        }
        SnippetLang::Libcurl => {
            "CURL *hnd = curl_easy_init();\n\ncurl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, \"GET\");\ncurl_easy_setopt(hnd, CURLOPT_URL, \"https://api.example.com/v1/pets\");\n\nstruct curl_slist *headers = NULL;\nheaders = curl_slist_append(headers, \"accept: application/json\");\ncurl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);\n\nCURLcode ret = curl_easy_perform(hnd);"
        }
    }
}

/// Cuts a snippet where a model hitting its token limit would: inside an open bracket or string.
fn truncated(lang: SnippetLang) -> String {
    let code = valid(lang);
    let cut = match lang {
        SnippetLang::Curl => code.find("limit").unwrap(),
        _ => code.find("example").unwrap() + 4,
    };
    code[..cut].to_owned()
}

#[test]
fn valid_snippets_pass_in_every_language() {
    for lang in SnippetLang::ALL {
        let c = check(valid(lang), lang);
        assert_eq!(c.verdict, Verdict::Valid, "{lang:?}: {c:?}");
        assert!(!c.fenced);
    }
}

#[test]
fn truncated_snippets_fail_in_every_language() {
    for lang in SnippetLang::ALL {
        let code = truncated(lang);
        let c = check(&code, lang);
        assert_eq!(
            c.verdict,
            Verdict::Invalid,
            "{lang:?} accepted truncated code: {code}"
        );
    }
}

#[test]
fn fenced_answers_are_invalid_and_flagged() {
    for lang in SnippetLang::ALL {
        let code = format!("```{}\n{}\n```", lang.name(), valid(lang));
        let c = check(&code, lang);
        assert_eq!(c.verdict, Verdict::Invalid, "{lang:?}");
        assert_eq!(c.failure, Some(Failure::MarkdownFence));
        assert!(c.fenced);
    }
}

#[test]
fn prose_is_rejected_in_every_language() {
    for lang in SnippetLang::ALL {
        for text in [
            PROSE,
            "Sure! Here is the request",
            "hello",
            "",
            "   \n",
            "# just a comment\n",
            "// just a comment\n",
            "To call this endpoint, send a GET request to /v1/pets with your API key.",
            "Use Net::HTTP to call the API, then print the body.",
            "The response is a JSON object: {\"id\": 1}",
            "I'm sorry, I can't do that.",
        ] {
            if lang == SnippetLang::Python && text == "hello" {
                // A bare name is a valid Python module for `ast.parse`; parity wins.
                assert_eq!(check(text, lang).verdict, Verdict::Valid);
                continue;
            }
            let c = check(text, lang);
            assert_eq!(
                c.verdict,
                Verdict::Invalid,
                "{lang:?} accepted {text:?}: {c:?}"
            );
        }
    }
}

#[test]
fn python_follows_cpython_not_tree_sitter() {
    // tree-sitter-python accepts the Python 2 print statement; CPython 3 does not.
    assert_eq!(
        check("print \"x\"", SnippetLang::Python).verdict,
        Verdict::Invalid
    );
    assert_eq!(
        check("print(\"x\")", SnippetLang::Python).verdict,
        Verdict::Valid
    );
    assert_eq!(
        check("def f(:\n  pass", SnippetLang::Python).verdict,
        Verdict::Invalid
    );
    assert_eq!(
        check("match x:\n    case 1:\n        pass", SnippetLang::Python).verdict,
        Verdict::Valid
    );
}

#[test]
fn language_guards() {
    // bash parses any command; only curl counts as a curl snippet.
    assert_eq!(
        check("wget https://api.example.com", SnippetLang::Curl).failure,
        Some(Failure::GuardFailed)
    );
    assert_eq!(
        check("curl https://api.example.com/v1 | jq .", SnippetLang::Curl).verdict,
        Verdict::Valid
    );
    // PHP must open with its tag (otherwise the grammar reads prose as inline HTML).
    assert_eq!(
        check("echo 'hi';", SnippetLang::Php).failure,
        Some(Failure::GuardFailed)
    );
    // Go snippets are whole programs.
    assert_eq!(
        check("fmt.Println(1)", SnippetLang::Go).verdict,
        Verdict::Invalid
    );
}

#[test]
fn labels_are_normalised_and_unknown_languages_unchecked() {
    assert_eq!(
        check_label(valid(SnippetLang::Curl), " cURL ").verdict,
        Verdict::Valid
    );
    assert_eq!(
        check_label(valid(SnippetLang::JavaScript), "javascript xhr").verdict,
        Verdict::Valid
    );
    let c = check_label("fn main() {}", "rust");
    assert_eq!(c.verdict, Verdict::Unchecked);
    assert!(!c.is_valid());
}

#[test]
fn pathological_nesting_does_not_crash() {
    // Degenerate generations (a model stuck repeating one token) must not overflow the stack.
    for lang in SnippetLang::ALL {
        for text in [
            "(".repeat(100_000),
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
        ] {
            let c = std::thread::Builder::new()
                .stack_size(2 << 20) // rayon's default worker stack
                .spawn(move || check(&text, lang))
                .unwrap()
                .join()
                .unwrap_or_else(|_| panic!("{lang:?} panicked"));
            assert_ne!(c.verdict, Verdict::Unchecked);
        }
    }
}
