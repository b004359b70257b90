#!/usr/bin/env python3
"""Reference values for apitune's metrics, computed with the tools the study used.

    python scripts/metrics_fixtures.py fixtures            # writes tests/fixtures/metrics/*.json
    python scripts/metrics_fixtures.py generate N OUT      # N synthetic (prediction, reference) pairs
    python scripts/metrics_fixtures.py score IN.jsonl      # sacreBLEU + rouge-score + HF BLEU, timed

Tools: sacrebleu 2.5.1, rouge-score 0.1.2, CPython 3.11 difflib (see
metrics_fixtures.requirements.txt). HF `evaluate`'s bleu is a hub script that needs network
access and the `datasets` stack, so `hf_bleu` below re-implements its published algorithm
(evaluate/metrics/bleu: tokenizer_13a without rstrip, TensorFlow NMT compute_bleu, smooth=False).
"""
import collections
import difflib
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # sentence-score advice, expected

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "metrics"
TOK13A = Tokenizer13a()


# ---------------------------------------------------------------- HF evaluate bleu (re-implemented)
def hf_tokens(text):
    # evaluate's tokenizer_13a: sacreBLEU's 13a without rstrip, returning the token list.
    return TOK13A(text).split()


def ngram_counts(tokens, max_order=4):
    counts = collections.Counter()
    for order in range(1, max_order + 1):
        for i in range(len(tokens) - order + 1):
            counts[tuple(tokens[i:i + order])] += 1
    return counts


def hf_stats(pred, ref, max_order=4):
    p, r = hf_tokens(pred), hf_tokens(ref)
    overlap = ngram_counts(p, max_order) & ngram_counts(r, max_order)
    matches = [0] * max_order
    for ngram, c in overlap.items():
        matches[len(ngram) - 1] += c
    possible = [max(0, len(p) - n + 1) for n in range(1, max_order + 1)]
    return len(p), len(r), matches, possible


def hf_bleu(preds, refs, max_order=4):
    matches = [0] * max_order
    possible = [0] * max_order
    tl = rl = 0
    for p, r in zip(preds, refs):
        a, b, m, t = hf_stats(p, r, max_order)
        tl += a
        rl += b
        for i in range(max_order):
            matches[i] += m[i]
            possible[i] += t[i]
    precisions = [matches[i] / possible[i] if possible[i] > 0 else 0.0 for i in range(max_order)]
    if min(precisions) > 0:
        geo_mean = math.exp(sum((1.0 / max_order) * math.log(p) for p in precisions))
    else:
        geo_mean = 0
    if rl == 0 or tl == 0:
        bp = 0.0
    else:
        ratio = tl / rl
        bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp


# ---------------------------------------------------------------- reference scorers
def exact_float(x):
    """Floats are stored as their shortest round-trip repr string: JSON readers differ in how
    exactly they parse numbers (serde_json's default parser can be one ULP off)."""
    return repr(float(x))


ROUGE = rouge_scorer.RougeScorer(["rougeL"])  # HF evaluate's defaults: no stemmer


def sacre_sentence(pred, ref):
    return sacrebleu.sentence_bleu(pred, [ref]).score


def pair_record(pred, ref, lang):
    corpus_one = BLEU().corpus_score([pred], [[ref]])
    rl = ROUGE.score(ref, pred)["rougeL"]
    sm = difflib.SequenceMatcher(None, pred, ref)
    hyp_len, ref_len, hf_m, hf_t = hf_stats(pred, ref)
    return {
        "prediction": pred,
        "reference": ref,
        "lang": lang,
        "tok13a_prediction": TOK13A(pred.rstrip()),
        "sacrebleu_stats": {
            "hyp_len": corpus_one.sys_len, "ref_len": corpus_one.ref_len,
            "correct": list(corpus_one.counts), "total": list(corpus_one.totals),
        },
        "hf_bleu_stats": {"hyp_len": hyp_len, "ref_len": ref_len, "correct": hf_m, "total": hf_t},
        "sacrebleu_sentence": exact_float(sacre_sentence(pred, ref)),
        "sacrebleu_sentence_no_effective_order": exact_float(BLEU(effective_order=False).sentence_score(pred, [ref]).score),
        "rouge_l": {"precision": exact_float(rl.precision), "recall": exact_float(rl.recall), "fmeasure": exact_float(rl.fmeasure)},
        "rouge_tokens_prediction": ROUGE._tokenizer.tokenize(pred),
        "difflib_ratio": exact_float(sm.ratio()),
        "difflib_ratio_swapped": exact_float(difflib.SequenceMatcher(None, ref, pred).ratio()),
        "difflib_blocks": [list(m) for m in sm.get_matching_blocks()],
        "exact_match": pred.strip() == ref.strip(),
    }


def corpus_record(pairs):
    preds = [p for p, _, _ in pairs]
    refs = [r for _, r, _ in pairs]
    sentence = [sacre_sentence(p, r) for p, r in zip(preds, refs)]
    rouge = [ROUGE.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)]
    return {
        "n": len(pairs),
        "sacrebleu_corpus": exact_float(sacrebleu.corpus_bleu(preds, [refs]).score),
        "sacrebleu_sentence_mean": exact_float(sum(sentence) / len(sentence)),
        "hf_bleu": exact_float(hf_bleu(preds, refs)),
        "rouge_l_mean": exact_float(sum(rouge) / len(rouge)),
        "exact_match": exact_float(sum(p.strip() == r.strip() for p, r in zip(preds, refs)) / len(pairs)),
    }


# ---------------------------------------------------------------- inputs
CURL = ("curl --request GET \\\n  --url 'https://api.example.com/v1/pets/123?limit=10&offset=0' \\\n"
        "  --header 'X-RapidAPI-Key: SOME_STRING_VALUE' \\\n  --header 'content-type: application/json'")
PY = ('import http.client\n\nconn = http.client.HTTPSConnection("api.example.com")\n\n'
      'headers = { \'Authorization\': "REPLACE_KEY_VALUE" }\n\n'
      'conn.request("GET", "/v1/pets/%7BpetId%7D", headers=headers)\n\n'
      'res = conn.getresponse()\ndata = res.read()\n\nprint(data.decode("utf-8"))')
GO = ('package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"io/ioutil"\n)\n\nfunc main() {\n\n'
      '\turl := "https://api.example.com/v1/orders/42"\n\n\treq, _ := http.NewRequest("DELETE", url, nil)\n\n'
      '\treq.Header.Add("accept", "application/json")\n\n\tres, _ := http.DefaultClient.Do(req)\n\n'
      '\tdefer res.Body.Close()\n\tbody, _ := ioutil.ReadAll(res.Body)\n\n\tfmt.Println(res)\n\tfmt.Println(string(body))\n\n}')
PHP = ('<?php\n\n$curl = curl_init();\n\ncurl_setopt_array($curl, [\n  CURLOPT_URL => "https//weatherapi.p.rapidapi.com/forecast?q=London&days=3",\n'
       '  CURLOPT_RETURNTRANSFER => true,\n  CURLOPT_CUSTOMREQUEST => "GET",\n  CURLOPT_HTTPHEADER => [\n'
       '    "X-RapidAPI-Key: SOME_STRING_VALUE"\n  ],\n]);\n\n$response = curl_exec($curl);\n$err = curl_error($curl);\n\n'
       'curl_close($curl);\n\nif ($err) {\n  echo "cURL Error #:" . $err;\n} else {\n  echo $response;\n}')
JAVA = ('OkHttpClient client = new OkHttpClient();\n\nRequest request = new Request.Builder()\n'
        '  .url("https://api.example.com/v2/users/{userId}/posts?page=1")\n  .get()\n'
        '  .addHeader("Authorization", "Bearer REPLACE_KEY_VALUE")\n  .build();\n\nResponse response = client.newCall(request).execute();')

HAND = [
    ("", "", "curl"),
    ("", "curl --request GET --url https://a.example.com/x", "curl"),
    ("curl --request GET --url https://a.example.com/x", "", "curl"),
    ("   \n\t", "x", "python"),
    ("print(1)", "print(1)", "python"),
    ("a b", "a b", "python"),
    ("a", "a b c d e", "python"),
    ("one two three", "one two three four", "python"),
    ("Héllo wörld — ünïcode ✓ 日本語 テスト", "Hello world — unicode ✓ 日本語", "python"),
    ("line one\r\nline two\r\n", "line one\nline two\n", "python"),
    ("a &amp; b &quot;c&quot; &lt;d&gt;", 'a & b "c" <d>', "curl"),
    ("hyphen-\nated word-\n", "hyphenated word-", "curl"),
    ("value 3.14, 1,000,000 and 2-3 -- x-y 10-20-30 a.b,c", "value 3.14 , 1,000,000 and 2 - 3", "python"),
    ("...,,,..--", ".,.,-", "python"),
    ("<skipped> token <skipped>", "token", "python"),
    ("x\u00a0y\u2003z\u3000w", "x y z w", "python"),
    ("a\u001cb\u001dc", "a b c", "python"),
    ("trailing spaces   \t\n", "trailing spaces", "python"),
    ("İstanbul KELVIN \u212a ß ΣΑΣ", "istanbul kelvin k ss σας", "python"),
    (CURL, CURL, "curl"),
    (CURL, CURL.replace("123", "456").replace("GET", "POST"), "curl"),
    (CURL.replace(" \\\n", " "), CURL, "curl"),
    (PY, PY, "python"),
    (PY, PY.replace("%7BpetId%7D", "42"), "python"),
    (PY.replace("GET", "POST"), PY, "python"),
    (GO, GO, "go"),
    (GO[:150], GO, "go"),
    (PHP, PHP.replace("London", "Paris"), "php"),
    (JAVA, JAVA.replace(".get()", '.post(body)'), "java"),
    ("a" * 10, "a" * 250, "python"),
    ("a" * 250, "a" * 10, "python"),
    ("ab" * 150 + "xyz", "xyz" + "ab" * 150, "python"),
    ("The quick brown fox " * 15, "The quick brown fox jumps " * 12, "python"),
    ("```bash\n" + CURL + "\n```", CURL, "curl"),
    ("Here is the code you asked for: " + CURL, CURL, "curl"),
]

HOSTS = ["api.example.com", "petstore.swagger.io", "weatherapi.p.rapidapi.com", "graph.microsoft.com",
         "api.github.com", "maps.googleapis.com", "api.stripe.com", "api-v3.example.org"]
SEGMENTS = ["v1", "v2", "users", "pets", "orders", "items", "search", "forecast", "repos", "issues",
            "comments", "%7Bid%7D", "{userId}", "123", "4.5", "2024-01-01", "by-name", "_internal", "données"]
PARAMS = ["limit=10", "offset=0", "q=London", "format=json", "lang=en", "page=2", "sort=-created", "a=1,2,3"]
HEADERS = ["X-RapidAPI-Key: SOME_STRING_VALUE", "Authorization: Bearer REPLACE_KEY_VALUE",
           "content-type: application/json", "accept: */*", "X-Api-Version: 2.1"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def random_call(rng):
    method = rng.choice(METHODS)
    host = rng.choice(HOSTS)
    path = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.6:
        path += "?" + "&".join(rng.sample(PARAMS, rng.randint(1, 3)))
    headers = rng.sample(HEADERS, rng.randint(0, 3))
    body = '{"name":"Rex","tags":["a","b"],"price":9.99}' if method in ("POST", "PUT", "PATCH") else None
    lang = rng.choice(["curl", "python", "go", "php", "java", "javascript", "node", "ruby", "swift", "libcurl"])
    url = f"https://{host}{path}"
    if lang == "curl":
        lines = [f"curl --request {method} \\", f"  --url '{url}'"] + [f"  --header '{h}'" for h in headers]
        if body:
            lines.append(f"  --data '{body}'")
        code = " \\\n".join(l.rstrip(" \\") for l in lines)
    elif lang == "python":
        hdrs = ", ".join(f'"{h.split(": ")[0]}": "{h.split(": ")[1]}"' for h in headers)
        code = (f'import http.client\n\nconn = http.client.HTTPSConnection("{host}")\n\n'
                + (f"payload = '{body}'\n\n" if body else "")
                + f"headers = {{ {hdrs} }}\n\n"
                + f'conn.request("{method}", "{path}"' + (", payload" if body else "") + ", headers=headers)\n\n"
                + 'res = conn.getresponse()\ndata = res.read()\n\nprint(data.decode("utf-8"))')
    elif lang == "go":
        code = (f'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"io"\n)\n\nfunc main() {{\n\n\turl := "{url}"\n\n'
                f'\treq, _ := http.NewRequest("{method}", url, nil)\n\n'
                + "".join(f'\treq.Header.Add("{h.split(": ")[0]}", "{h.split(": ")[1]}")\n' for h in headers)
                + '\n\tres, _ := http.DefaultClient.Do(req)\n\tdefer res.Body.Close()\n\tbody, _ := io.ReadAll(res.Body)\n\n'
                  '\tfmt.Println(string(body))\n\n}')
    elif lang == "php":
        code = ('<?php\n\n$curl = curl_init();\n\ncurl_setopt_array($curl, [\n'
                f'  CURLOPT_URL => "{url}",\n  CURLOPT_RETURNTRANSFER => true,\n'
                f'  CURLOPT_CUSTOMREQUEST => "{method}",\n  CURLOPT_HTTPHEADER => [\n'
                + ",\n".join(f'    "{h}"' for h in headers) + '\n  ],\n]);\n\n$response = curl_exec($curl);\n'
                'curl_close($curl);\n\necho $response;')
    elif lang == "java":
        verb = f'.method("{method}", body)' if body else ".get()"
        code = (f'OkHttpClient client = new OkHttpClient();\n\nRequest request = new Request.Builder()\n  .url("{url}")\n  {verb}\n'
                + "".join(f'  .addHeader("{h.split(": ")[0]}", "{h.split(": ")[1]}")\n' for h in headers)
                + "  .build();\n\nResponse response = client.newCall(request).execute();")
    elif lang == "javascript":
        code = ('const data = null;\n\nconst xhr = new XMLHttpRequest();\nxhr.withCredentials = true;\n\n'
                'xhr.addEventListener("readystatechange", function () {\n  if (this.readyState === this.DONE) {\n'
                f'    console.log(this.responseText);\n  }}\n}});\n\nxhr.open("{method}", "{url}");\n'
                + "".join(f'xhr.setRequestHeader("{h.split(": ")[0]}", "{h.split(": ")[1]}");\n' for h in headers)
                + "\nxhr.send(data);")
    elif lang == "node":
        hdrs = ", ".join(f"'{h.split(': ')[0]}': '{h.split(': ')[1]}'" for h in headers)
        code = (f"const request = require('request');\n\nconst options = {{\n  method: '{method}',\n  url: '{url}',\n"
                f"  headers: {{{hdrs}}}\n}};\n\nrequest(options, function (error, response, body) {{\n"
                "  if (error) throw new Error(error);\n\n  console.log(body);\n});")
    elif lang == "ruby":
        code = (f"require 'uri'\nrequire 'net/http'\n\nurl = URI(\"{url}\")\n\nhttp = Net::HTTP.new(url.host, url.port)\n"
                f"http.use_ssl = true\n\nrequest = Net::HTTP::{method.capitalize()}.new(url)\n"
                + "".join(f'request["{h.split(": ")[0]}"] = \'{h.split(": ")[1]}\'\n' for h in headers)
                + "\nresponse = http.request(request)\nputs response.read_body")
    elif lang == "swift":
        code = ("import Foundation\n\n"
                f'let request = NSMutableURLRequest(url: NSURL(string: "{url}")! as URL,\n'
                "                                        cachePolicy: .useProtocolCachePolicy,\n"
                "                                    timeoutInterval: 10.0)\n"
                f'request.httpMethod = "{method}"\n\nlet session = URLSession.shared\n'
                "let dataTask = session.dataTask(with: request as URLRequest, completionHandler: { (data, response, error) -> Void in\n"
                "  if (error != nil) {\n    print(error as Any)\n  } else {\n    let httpResponse = response as? HTTPURLResponse\n"
                "    print(httpResponse)\n  }\n})\n\ndataTask.resume()")
    else:
        code = ('CURL *hnd = curl_easy_init();\n\n'
                f'curl_easy_setopt(hnd, CURLOPT_CUSTOMREQUEST, "{method}");\n'
                f'curl_easy_setopt(hnd, CURLOPT_URL, "{url}");\n\n'
                'struct curl_slist *headers = NULL;\n'
                + "".join(f'headers = curl_slist_append(headers, "{h}");\n' for h in headers)
                + 'curl_easy_setopt(hnd, CURLOPT_HTTPHEADER, headers);\n\nCURLcode ret = curl_easy_perform(hnd);')
    return code, lang


NOISE = ["&amp;", "&quot;", "\r\n", "…", "—", "é", "日本", " ", "\t", "-\n", ".", ",", "1.5", "2,000", "3-4",
         "{", "}", "(", ")", "'", '"', "\\", "$", "@", "<skipped>"]


def mutate(code, rng):
    """A plausible model output: edits, truncation, extra text, line duplication."""
    out = code
    for _ in range(rng.randint(0, 6)):
        op = rng.random()
        i = rng.randint(0, len(out))
        if op < 0.3 and out:
            j = min(len(out), i + rng.randint(1, 12))
            out = out[:i] + out[j:]
        elif op < 0.6:
            out = out[:i] + rng.choice(NOISE) + out[i:]
        elif op < 0.75:
            lines = out.split("\n")
            k = rng.randrange(len(lines))
            lines.insert(k, lines[k])
            out = "\n".join(lines)
        elif op < 0.85:
            out = out[: rng.randint(0, len(out))]
        else:
            out = out.replace("GET", "POST", 1) if rng.random() < 0.5 else out + "\n" + rng.choice(NOISE) * 3
    if rng.random() < 0.05:
        out = " ".join(out.split()[: rng.randint(0, 3)])  # under four tokens
    return out


def generated_pairs(n, seed):
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        ref, lang = random_call(rng)
        r = rng.random()
        if r < 0.1:
            pred = ref
        elif r < 0.2:
            pred, _ = random_call(rng)  # an unrelated call
        else:
            pred = mutate(ref, rng)
        pairs.append((pred, ref, lang))
    return pairs


# ---------------------------------------------------------------- commands
def cmd_fixtures():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    gen = generated_pairs(300, seed=20261128)
    pairs = HAND + gen
    versions = {"sacrebleu": sacrebleu.__version__, "rouge_score": "0.1.2", "python": sys.version.split()[0]}
    record = {
        "tools": versions,
        "pairs": [pair_record(p, r, l) for p, r, l in pairs],
        "corpora": {
            "all": corpus_record(pairs),
            "hand": corpus_record(HAND),
            "generated": corpus_record(gen),
            **{f"chunk{k}": corpus_record(pairs[k * 40:(k + 1) * 40]) for k in range(len(pairs) // 40)},
        },
    }
    path = OUT_DIR / "golden.json"
    path.write_text(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(pairs)} pairs)")


def cmd_generate(n, out):
    with open(out, "w", encoding="utf-8") as f:
        for i, (p, r, l) in enumerate(generated_pairs(n, seed=7)):
            f.write(json.dumps({"id": i, "prediction": p, "reference": r, "lang": l}, ensure_ascii=False) + "\n")


def cmd_score(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    preds = [r["prediction"] for r in rows]
    refs = [r["reference"] for r in rows]
    t0 = time.perf_counter()
    corpus = sacrebleu.corpus_bleu(preds, [refs]).score
    sentence = [sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(preds, refs)]
    rouge = [ROUGE.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)]
    hf = hf_bleu(preds, refs)
    elapsed = time.perf_counter() - t0
    print(json.dumps({
        "n": len(rows), "seconds": elapsed,
        "sacrebleu_corpus": exact_float(corpus),
        "sacrebleu_sentence_mean": exact_float(sum(sentence) / len(sentence)),
        "rouge_l_mean": exact_float(sum(rouge) / len(rouge)), "hf_bleu": exact_float(hf),
    }))


if __name__ == "__main__":
    if sys.version_info[:2] != (3, 11):
        print("warning: fixtures are pinned to CPython 3.11 (sum() semantics)", file=sys.stderr)
    cmd = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    if cmd == "fixtures":
        cmd_fixtures()
    elif cmd == "generate":
        cmd_generate(int(sys.argv[2]), sys.argv[3])
    elif cmd == "score":
        cmd_score(sys.argv[2])
    else:
        sys.exit(__doc__)
