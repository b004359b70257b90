//! What the readers' tests share: the snippets `apitune-data`'s `openapi::snippets` renders
//! (httpsnippet's shapes) for four requests, copied verbatim, and the call each one makes.

use super::HttpCall;

/// The canonical languages with a reader.
pub(super) const LANGS: [&str; 10] = [
    "curl",
    "python",
    "javascript",
    "node",
    "go",
    "java",
    "ruby",
    "php",
    "swift",
    "libcurl",
];

pub(super) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The call each of the four requests makes, whatever the language.
pub(super) fn expected(request: &str) -> HttpCall {
    let call = |method: &str, url: &str, query, headers, body: Option<&str>| HttpCall {
        method: method.into(),
        url: url.into(),
        query,
        headers,
        body: body.map(str::to_string),
    };
    match request {
        // A JSON body whose text needs escapes in every language (`"`, `\`, `'`, `$`).
        "post" => call(
            "POST",
            "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews",
            pairs(&[("notify", "SOME_BOOLEAN_VALUE"), ("lang", "en")]),
            pairs(&[
                ("X-Api-Key", "REPLACE_KEY_VALUE"),
                ("content-type", "application/json"),
            ]),
            Some(r#"{"stars":5,"text":"it's $5 \"great\"","tags":["a","b"],"draft":false}"#),
        ),
        // Plain http, a port, nothing else.
        "get" => call("GET", "http://localhost:8080/pets", vec![], vec![], None),
        // Headers and a query without a body.
        "delete" => call(
            "DELETE",
            "https://api.example.com/v1/pets/42",
            pairs(&[("force", "true")]),
            pairs(&[("Authorization", "Bearer REPLACE_BEARER_TOKEN")]),
            None,
        ),
        // A body that is not JSON.
        "form" => call(
            "PUT",
            "http://forms.test/submit",
            vec![],
            pairs(&[("content-type", "application/x-www-form-urlencoded")]),
            Some("a=1&b=two words"),
        ),
        other => panic!("no request {other}"),
    }
}

/// Asserts that `lang`'s reader reads each of the four snippets rendered for it.
pub(super) fn assert_reads_httpsnippet_shapes(lang: &str) {
    let mut seen = 0;
    for (l, request, code) in GOLDEN {
        if l == lang {
            let call = super::parse_call(lang, code);
            assert_eq!(call, Some(expected(request)), "{lang} {request}:\n{code}");
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "{lang}");
}

/// Every prefix of every snippet, cut at character boundaries, with its language.
pub(super) fn truncations() -> impl Iterator<Item = (&'static str, &'static str)> {
    GOLDEN.iter().flat_map(|(lang, _, code)| {
        code.char_indices()
            .map(move |(end, _)| (*lang, &code[..end]))
    })
}

/// (language, request, snippet), as `apitune_data::openapi::snippets::render` writes them.
pub(super) const GOLDEN: [(&str, &str, &str); 40] = [
    (
        "curl",
        "post",
        r##"curl --request POST \
  --url 'https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en' \
  --header 'X-Api-Key: REPLACE_KEY_VALUE' \
  --header 'content-type: application/json' \
  --data '{"stars":5,"text":"it'\''s $5 \"great\"","tags":["a","b"],"draft":false}'"##,
    ),
    (
        "curl",
        "get",
        r##"curl --request GET \
  --url http://localhost:8080/pets"##,
    ),
    (
        "curl",
        "delete",
        r##"curl --request DELETE \
  --url 'https://api.example.com/v1/pets/42?force=true' \
  --header 'Authorization: Bearer REPLACE_BEARER_TOKEN'"##,
    ),
    (
        "curl",
        "form",
        r##"curl --request PUT \
  --url http://forms.test/submit \
  --header 'content-type: application/x-www-form-urlencoded' \
  --data 'a=1&b=two words'"##,
    ),
    (
        "python",
        "post",
        r##"import http.client

conn = http.client.HTTPSConnection("api.bookshop.test")

payload = "{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}"

headers = {
    'X-Api-Key': "REPLACE_KEY_VALUE",
    'content-type': "application/json"
    }

conn.request("POST", "/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en", payload, headers)

res = conn.getresponse()
data = res.read()

print(data.decode("utf-8"))"##,
    ),
    (
        "python",
        "get",
        r##"import http.client

conn = http.client.HTTPConnection("localhost:8080")

conn.request("GET", "/pets")

res = conn.getresponse()
data = res.read()

print(data.decode("utf-8"))"##,
    ),
    (
        "python",
        "delete",
        r##"import http.client

conn = http.client.HTTPSConnection("api.example.com")

headers = {
    'Authorization': "Bearer REPLACE_BEARER_TOKEN"
    }

conn.request("DELETE", "/v1/pets/42?force=true", headers=headers)

res = conn.getresponse()
data = res.read()

print(data.decode("utf-8"))"##,
    ),
    (
        "python",
        "form",
        r##"import http.client

conn = http.client.HTTPConnection("forms.test")

payload = "a=1&b=two words"

headers = {
    'content-type': "application/x-www-form-urlencoded"
    }

conn.request("PUT", "/submit", payload, headers)

res = conn.getresponse()
data = res.read()

print(data.decode("utf-8"))"##,
    ),
    (
        "javascript",
        "post",
        r##"const data = JSON.stringify({
  "stars": 5,
  "text": "it's $5 \"great\"",
  "tags": [
    "a",
    "b"
  ],
  "draft": false
});

const xhr = new XMLHttpRequest();
xhr.withCredentials = true;

xhr.addEventListener("readystatechange", function () {
  if (this.readyState === this.DONE) {
    console.log(this.responseText);
  }
});

xhr.open("POST", "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en");
xhr.setRequestHeader("X-Api-Key", "REPLACE_KEY_VALUE");
xhr.setRequestHeader("content-type", "application/json");

xhr.send(data);"##,
    ),
    (
        "javascript",
        "get",
        r##"const data = null;

const xhr = new XMLHttpRequest();
xhr.withCredentials = true;

xhr.addEventListener("readystatechange", function () {
  if (this.readyState === this.DONE) {
    console.log(this.responseText);
  }
});

xhr.open("GET", "http://localhost:8080/pets");

xhr.send(data);"##,
    ),
    (
        "javascript",
        "delete",
        r##"const data = null;

const xhr = new XMLHttpRequest();
xhr.withCredentials = true;

xhr.addEventListener("readystatechange", function () {
  if (this.readyState === this.DONE) {
    console.log(this.responseText);
  }
});

xhr.open("DELETE", "https://api.example.com/v1/pets/42?force=true");
xhr.setRequestHeader("Authorization", "Bearer REPLACE_BEARER_TOKEN");

xhr.send(data);"##,
    ),
    (
        "javascript",
        "form",
        r##"const data = "a=1&b=two words";

const xhr = new XMLHttpRequest();
xhr.withCredentials = true;

xhr.addEventListener("readystatechange", function () {
  if (this.readyState === this.DONE) {
    console.log(this.responseText);
  }
});

xhr.open("PUT", "http://forms.test/submit");
xhr.setRequestHeader("content-type", "application/x-www-form-urlencoded");

xhr.send(data);"##,
    ),
    (
        "node",
        "post",
        r##"const request = require('request');

const options = {
  method: 'POST',
  url: 'https://api.bookshop.test/v2/books/%7BbookId%7D/reviews',
  qs: {'notify': 'SOME_BOOLEAN_VALUE', 'lang': 'en'},
  headers: {'X-Api-Key': 'REPLACE_KEY_VALUE', 'content-type': 'application/json'},
  body: {"stars":5,"text":"it's $5 \"great\"","tags":["a","b"],"draft":false},
  json: true
};

request(options, function (error, response, body) {
  if (error) throw new Error(error);

  console.log(body);
});"##,
    ),
    (
        "node",
        "get",
        r##"const request = require('request');

const options = {
  method: 'GET',
  url: 'http://localhost:8080/pets'
};

request(options, function (error, response, body) {
  if (error) throw new Error(error);

  console.log(body);
});"##,
    ),
    (
        "node",
        "delete",
        r##"const request = require('request');

const options = {
  method: 'DELETE',
  url: 'https://api.example.com/v1/pets/42',
  qs: {'force': 'true'},
  headers: {'Authorization': 'Bearer REPLACE_BEARER_TOKEN'}
};

request(options, function (error, response, body) {
  if (error) throw new Error(error);

  console.log(body);
});"##,
    ),
    (
        "node",
        "form",
        r##"const request = require('request');

const options = {
  method: 'PUT',
  url: 'http://forms.test/submit',
  headers: {'content-type': 'application/x-www-form-urlencoded'},
  body: 'a=1&b=two words'
};

request(options, function (error, response, body) {
  if (error) throw new Error(error);

  console.log(body);
});"##,
    ),
    (
        "go",
        "post",
        r##"package main

import (
	"fmt"
	"strings"
	"net/http"
	"io/ioutil"
)

func main() {

	url := "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en"

	payload := strings.NewReader("{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}")

	req, _ := http.NewRequest("POST", url, payload)

	req.Header.Add("X-Api-Key", "REPLACE_KEY_VALUE")
	req.Header.Add("content-type", "application/json")

	res, _ := http.DefaultClient.Do(req)

	defer res.Body.Close()
	body, _ := ioutil.ReadAll(res.Body)

	fmt.Println(res)
	fmt.Println(string(body))

}"##,
    ),
    (
        "go",
        "get",
        r##"package main

import (
	"fmt"
	"net/http"
	"io/ioutil"
)

func main() {

	url := "http://localhost:8080/pets"

	req, _ := http.NewRequest("GET", url, nil)

	res, _ := http.DefaultClient.Do(req)

	defer res.Body.Close()
	body, _ := ioutil.ReadAll(res.Body)

	fmt.Println(res)
	fmt.Println(string(body))

}"##,
    ),
    (
        "go",
        "delete",
        r##"package main

import (
	"fmt"
	"net/http"
	"io/ioutil"
)

func main() {

	url := "https://api.example.com/v1/pets/42?force=true"

	req, _ := http.NewRequest("DELETE", url, nil)

	req.Header.Add("Authorization", "Bearer REPLACE_BEARER_TOKEN")

	res, _ := http.DefaultClient.Do(req)

	defer res.Body.Close()
	body, _ := ioutil.ReadAll(res.Body)

	fmt.Println(res)
	fmt.Println(string(body))

}"##,
    ),
    (
        "go",
        "form",
        r##"package main

import (
	"fmt"
	"strings"
	"net/http"
	"io/ioutil"
)

func main() {

	url := "http://forms.test/submit"

	payload := strings.NewReader("a=1&b=two words")

	req, _ := http.NewRequest("PUT", url, payload)

	req.Header.Add("content-type", "application/x-www-form-urlencoded")

	res, _ := http.DefaultClient.Do(req)

	defer res.Body.Close()
	body, _ := ioutil.ReadAll(res.Body)

	fmt.Println(res)
	fmt.Println(string(body))

}"##,
    ),
    (
        "java",
        "post",
        r##"OkHttpClient client = new OkHttpClient();

MediaType mediaType = MediaType.parse("application/json");
RequestBody body = RequestBody.create(mediaType, "{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}");
Request request = new Request.Builder()
  .url("https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en")
  .post(body)
  .addHeader("X-Api-Key", "REPLACE_KEY_VALUE")
  .addHeader("content-type", "application/json")
  .build();

Response response = client.newCall(request).execute();"##,
    ),
    (
        "java",
        "get",
        r##"OkHttpClient client = new OkHttpClient();

Request request = new Request.Builder()
  .url("http://localhost:8080/pets")
  .get()
  .build();

Response response = client.newCall(request).execute();"##,
    ),
    (
        "java",
        "delete",
        r##"OkHttpClient client = new OkHttpClient();

Request request = new Request.Builder()
  .url("https://api.example.com/v1/pets/42?force=true")
  .delete(null)
  .addHeader("Authorization", "Bearer REPLACE_BEARER_TOKEN")
  .build();

Response response = client.newCall(request).execute();"##,
    ),
    (
        "java",
        "form",
        r##"OkHttpClient client = new OkHttpClient();

MediaType mediaType = MediaType.parse("application/x-www-form-urlencoded");
RequestBody body = RequestBody.create(mediaType, "a=1&b=two words");
Request request = new Request.Builder()
  .url("http://forms.test/submit")
  .put(body)
  .addHeader("content-type", "application/x-www-form-urlencoded")
  .build();

Response response = client.newCall(request).execute();"##,
    ),
    (
        "ruby",
        "post",
        r##"require 'uri'
require 'net/http'
require 'openssl'

url = URI("https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en")

http = Net::HTTP.new(url.host, url.port)
http.use_ssl = true
http.verify_mode = OpenSSL::SSL::VERIFY_NONE

request = Net::HTTP::Post.new(url)
request["X-Api-Key"] = 'REPLACE_KEY_VALUE'
request["content-type"] = 'application/json'
request.body = "{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}"

response = http.request(request)
puts response.read_body"##,
    ),
    (
        "ruby",
        "get",
        r##"require 'uri'
require 'net/http'

url = URI("http://localhost:8080/pets")

http = Net::HTTP.new(url.host, url.port)

request = Net::HTTP::Get.new(url)

response = http.request(request)
puts response.read_body"##,
    ),
    (
        "ruby",
        "delete",
        r##"require 'uri'
require 'net/http'
require 'openssl'

url = URI("https://api.example.com/v1/pets/42?force=true")

http = Net::HTTP.new(url.host, url.port)
http.use_ssl = true
http.verify_mode = OpenSSL::SSL::VERIFY_NONE

request = Net::HTTP::Delete.new(url)
request["Authorization"] = 'Bearer REPLACE_BEARER_TOKEN'

response = http.request(request)
puts response.read_body"##,
    ),
    (
        "ruby",
        "form",
        r##"require 'uri'
require 'net/http'

url = URI("http://forms.test/submit")

http = Net::HTTP.new(url.host, url.port)

request = Net::HTTP::Put.new(url)
request["content-type"] = 'application/x-www-form-urlencoded'
request.body = "a=1&b=two words"

response = http.request(request)
puts response.read_body"##,
    ),
    (
        "php",
        "post",
        r##"<?php

$curl = curl_init();

curl_setopt_array($curl, [
  CURLOPT_URL => "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 30,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "POST",
  CURLOPT_POSTFIELDS => "{\"stars\":5,\"text\":\"it's \$5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}",
  CURLOPT_HTTPHEADER => [
    "X-Api-Key: REPLACE_KEY_VALUE",
    "content-type: application/json"
  ],
]);

$response = curl_exec($curl);
$err = curl_error($curl);

curl_close($curl);

if ($err) {
  echo "cURL Error #:" . $err;
} else {
  echo $response;
}"##,
    ),
    (
        "php",
        "get",
        r##"<?php

$curl = curl_init();

curl_setopt_array($curl, [
  CURLOPT_URL => "http://localhost:8080/pets",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 30,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "GET",
]);

$response = curl_exec($curl);
$err = curl_error($curl);

curl_close($curl);

if ($err) {
  echo "cURL Error #:" . $err;
} else {
  echo $response;
}"##,
    ),
    (
        "php",
        "delete",
        r##"<?php

$curl = curl_init();

curl_setopt_array($curl, [
  CURLOPT_URL => "https://api.example.com/v1/pets/42?force=true",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 30,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "DELETE",
  CURLOPT_HTTPHEADER => [
    "Authorization: Bearer REPLACE_BEARER_TOKEN"
  ],
]);

$response = curl_exec($curl);
$err = curl_error($curl);

curl_close($curl);

if ($err) {
  echo "cURL Error #:" . $err;
} else {
  echo $response;
}"##,
    ),
    (
        "php",
        "form",
        r##"<?php

$curl = curl_init();

curl_setopt_array($curl, [
  CURLOPT_URL => "http://forms.test/submit",
  CURLOPT_RETURNTRANSFER => true,
  CURLOPT_ENCODING => "",
  CURLOPT_MAXREDIRS => 10,
  CURLOPT_TIMEOUT => 30,
  CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
  CURLOPT_CUSTOMREQUEST => "PUT",
  CURLOPT_POSTFIELDS => "a=1&b=two words",
  CURLOPT_HTTPHEADER => [
    "content-type: application/x-www-form-urlencoded"
  ],
]);

$response = curl_exec($curl);
$err = curl_error($curl);

curl_close($curl);

if ($err) {
  echo "cURL Error #:" . $err;
} else {
  echo $response;
}"##,
    ),
    (
        "swift",
        "post",
        r##"import Foundation

let headers = [
  "X-Api-Key": "REPLACE_KEY_VALUE",
  "content-type": "application/json"
]

let postData = NSData(data: "{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}".data(using: String.Encoding.utf8)!)

let request = NSMutableURLRequest(url: NSURL(string: "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en")! as URL,
                                        cachePolicy: .useProtocolCachePolicy,
                                    timeoutInterval: 10.0)
request.httpMethod = "POST"
request.allHTTPHeaderFields = headers
request.httpBody = postData as Data

let session = URLSession.shared
let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in
  if (error != nil) {
    print(error as Any)
  } else {
    let httpResponse = response as? HTTPURLResponse
    print(httpResponse)
  }
})

dataTask.resume()"##,
    ),
    (
        "swift",
        "get",
        r##"import Foundation


let request = NSMutableURLRequest(url: NSURL(string: "http://localhost:8080/pets")! as URL,
                                        cachePolicy: .useProtocolCachePolicy,
                                    timeoutInterval: 10.0)
request.httpMethod = "GET"

let session = URLSession.shared
let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in
  if (error != nil) {
    print(error as Any)
  } else {
    let httpResponse = response as? HTTPURLResponse
    print(httpResponse)
  }
})

dataTask.resume()"##,
    ),
    (
        "swift",
        "delete",
        r##"import Foundation

let headers = [
  "Authorization": "Bearer REPLACE_BEARER_TOKEN"
]

let request = NSMutableURLRequest(url: NSURL(string: "https://api.example.com/v1/pets/42?force=true")! as URL,
                                        cachePolicy: .useProtocolCachePolicy,
                                    timeoutInterval: 10.0)
request.httpMethod = "DELETE"
request.allHTTPHeaderFields = headers

let session = URLSession.shared
let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in
  if (error != nil) {
    print(error as Any)
  } else {
    let httpResponse = response as? HTTPURLResponse
    print(httpResponse)
  }
})

dataTask.resume()"##,
    ),
    (
        "swift",
        "form",
        r##"import Foundation

let headers = [
  "content-type": "application/x-www-form-urlencoded"
]

let postData = NSData(data: "a=1&b=two words".data(using: String.Encoding.utf8)!)

let request = NSMutableURLRequest(url: NSURL(string: "http://forms.test/submit")! as URL,
                                        cachePolicy: .useProtocolCachePolicy,
                                    timeoutInterval: 10.0)
request.httpMethod = "PUT"
request.allHTTPHeaderFields = headers
request.httpBody = postData as Data

let session = URLSession.shared
let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in
  if (error != nil) {
    print(error as Any)
  } else {
    let httpResponse = response as? HTTPURLResponse
    print(httpResponse)
  }
})

dataTask.resume()"##,
    ),
    (
        "libcurl",
        "post",
        r##"CURL *hnd = curl_easy_init();

curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, "POST");
curl_easy_setopt(hnd, CURLOPT_URL, "https://api.bookshop.test/v2/books/%7BbookId%7D/reviews?notify=SOME_BOOLEAN_VALUE&lang=en");

struct curl_slist *headers = NULL;
headers = curl_slist_append(headers, "X-Api-Key: REPLACE_KEY_VALUE");
headers = curl_slist_append(headers, "content-type: application/json");
curl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);

curl_easy_setopt(hnd, CURLOPT_POSTFIELDS, "{\"stars\":5,\"text\":\"it's $5 \\\"great\\\"\",\"tags\":[\"a\",\"b\"],\"draft\":false}");

CURLcode ret = curl_easy_perform(hnd);"##,
    ),
    (
        "libcurl",
        "get",
        r##"CURL *hnd = curl_easy_init();

curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, "GET");
curl_easy_setopt(hnd, CURLOPT_URL, "http://localhost:8080/pets");

CURLcode ret = curl_easy_perform(hnd);"##,
    ),
    (
        "libcurl",
        "delete",
        r##"CURL *hnd = curl_easy_init();

curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, "DELETE");
curl_easy_setopt(hnd, CURLOPT_URL, "https://api.example.com/v1/pets/42?force=true");

struct curl_slist *headers = NULL;
headers = curl_slist_append(headers, "Authorization: Bearer REPLACE_BEARER_TOKEN");
curl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);

CURLcode ret = curl_easy_perform(hnd);"##,
    ),
    (
        "libcurl",
        "form",
        r##"CURL *hnd = curl_easy_init();

curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, "PUT");
curl_easy_setopt(hnd, CURLOPT_URL, "http://forms.test/submit");

struct curl_slist *headers = NULL;
headers = curl_slist_append(headers, "content-type: application/x-www-form-urlencoded");
curl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);

curl_easy_setopt(hnd, CURLOPT_POSTFIELDS, "a=1&b=two words");

CURLcode ret = curl_easy_perform(hnd);"##,
    ),
];
