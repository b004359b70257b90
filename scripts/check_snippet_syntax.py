#!/usr/bin/env python3
"""Spot-checks the syntax of generated snippets in a records.jsonl with each language's own tool.

python: compile(); javascript/node: `node --check`; curl: `bash -n`; libcurl: `gcc -fsyntax-only`
inside a main() with stub declarations; java: `javac` on the snippets as method bodies against
stub OkHttp classes (so types are checked too; only generated OkHttp snippets, not a spec's own
samples). Languages whose tool is missing are reported as unchecked, never as passing.

Usage: python3 scripts/check_snippet_syntax.py path/to/records.jsonl [samples-per-language]
Standard library only; needs node, bash, gcc, javac on PATH for those languages.
"""

import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

C_STUB = (
    "typedef void CURL; typedef int CURLcode; struct curl_slist;\n"
    "CURL *curl_easy_init(void); int curl_easy_setopt(CURL *, int, ...); CURLcode curl_easy_perform(CURL *);\n"
    "struct curl_slist *curl_slist_append(struct curl_slist *, const char *);\n"
    "enum { CURLOPT_CUSTOMREQUEST, CURLOPT_URL, CURLOPT_HTTPHEADER, CURLOPT_POSTFIELDS };\n"
    "#define NULL ((void *)0)\nint main(void) {\n"
)

JAVA_STUB = """
class OkHttpClient { Call newCall(Request r) { return null; } }
class Call { Response execute() { return null; } }
class MediaType { static MediaType parse(String s) { return null; } }
class RequestBody { static RequestBody create(MediaType m, String s) { return null; } }
class Request { static class Builder {
  Builder url(String u) { return this; } Builder get() { return this; } Builder head() { return this; }
  Builder post(RequestBody b) { return this; } Builder put(RequestBody b) { return this; }
  Builder patch(RequestBody b) { return this; } Builder delete(RequestBody b) { return this; }
  Builder method(String m, RequestBody b) { return this; } Builder addHeader(String a, String b) { return this; }
  Request build() { return null; } } }
class Response {}
"""


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def main():
    path = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    random.seed(0)
    by_lang = collections.defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                by_lang[record["lang"]].append(record)
    work = tempfile.mkdtemp()
    tools = {"javascript": "node", "node": "node", "curl": "bash", "libcurl": "gcc", "java": "javac"}
    for lang in ["python", "javascript", "node", "curl", "libcurl", "java"]:
        if lang in tools and shutil.which(tools[lang]) is None:
            print(f"{lang}: unchecked ({tools[lang]} not found)")
            continue
        pool = by_lang.get(lang, [])
        if lang == "java":
            pool = [r for r in pool if r["code"].startswith("OkHttpClient client")]
        chosen = random.sample(pool, min(samples, len(pool)))
        failures = []
        if lang == "java" and chosen:
            methods = "\n".join(f"void m{i}() throws Exception {{\n{r['code']}\n}}" for i, r in enumerate(chosen))
            source = os.path.join(work, "X.java")
            with open(source, "w", encoding="utf-8") as handle:
                handle.write(JAVA_STUB + "public class X {\n" + methods + "\n}\n")
            result = run(["javac", "-d", os.path.join(work, "classes"), source])
            if result.returncode:
                failures.append(("(batch)", result.stderr[:500]))
        for record in chosen if lang != "java" else []:
            code = record["code"]
            if lang == "python":
                try:
                    compile(code, record["unique_id"], "exec")
                    continue
                except SyntaxError as error:
                    failures.append((record["unique_id"], str(error)))
                    continue
            if lang in ("javascript", "node"):
                file = os.path.join(work, "x.js")
                open(file, "w", encoding="utf-8").write(code)
                result = run(["node", "--check", file])
            elif lang == "curl":
                result = run(["bash", "-n", "-c", code])
            else:
                file = os.path.join(work, "x.c")
                open(file, "w", encoding="utf-8").write(C_STUB + code + "\nreturn 0; }\n")
                result = run(["gcc", "-fsyntax-only", "-w", file])
            if result.returncode:
                failures.append((record["unique_id"], result.stderr[:300]))
        print(f"{lang}: {len(chosen)} checked, {len(failures)} failed")
        for unique_id, message in failures[:3]:
            print(f"  {unique_id}: {message}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
