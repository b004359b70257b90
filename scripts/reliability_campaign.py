#!/usr/bin/env python3
"""Reliability campaign against a built apitune binary, as a hostile user would run it.

Kills runs and repairs with SIGKILL at random moments, runs writers concurrently, damages the
cache, feeds malformed manifests, ingest sources and models, and tries to make apitune touch files
that are not its own. Every trial states what must happen (exit code, message, bytes on disk);
the summary counts panics (exit 101), aborts (signals), hangs, wrong exit codes and corruptions.

    cargo build --release
    python3 scripts/reliability_campaign.py [--binary PATH] [--kill-trials N] [--seed S]

Needs only the Python standard library. The regression tests in `tests/` pin each defect; this
script measures the whole binary on many trials and is not part of `cargo test`.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HANG_SECONDS = 20

MINI = """[experiment]
name = "campaign"
seed = 3

[models.tiny]
arch = "gpt2"
init = "random"
config = {{ n_layer = 1, n_embd = 64, n_head = 2, n_positions = 256 }}
tokenizer = {{ train_bpe = {{ vocab_size = 512 }} }}

[stages.ingest]
kind = "ingest"
source = {{ openapi = "{specs}" }}

[stages.split]
kind = "normalize"
needs = ["ingest"]
heldout = {{ level1 = 2, level2 = 2, level3 = 2 }}

[stages.pretrain]
kind = "pretrain"
needs = ["split"]
model = "tiny"
samples = 300
objective = "code"
train = {{ lr = 5e-3, epochs = 1, micro_batch = 16, max_len = 256 }}

[stages.lora]
kind = "lora-train"
needs = ["split", "pretrain"]
matrix = {{ samples = [40, 80] }}
lora = {{ r = 4, alpha = 8, targets = ["c_attn"] }}
train = {{ lr = 1e-2, epochs = 1, micro_batch = 8, max_len = 256 }}

[stages.eval]
kind = "eval"
needs = ["split", "lora", "pretrain"]
limit = 12
decoding = {{ max_new_tokens = 24, stop = ["\\n\\n\\n"] }}

[stages.report]
kind = "report"
needs = ["eval", "lora"]
"""


class Tally:
    def __init__(self):
        self.rows = []

    def add(self, area, scenario, trials, failures, note=""):
        self.rows.append((area, scenario, trials, failures, note))
        mark = "ok  " if failures == 0 else "FAIL"
        print(f"{mark} {area:<12} {scenario:<58} {trials:>5} trials  {failures} failed  {note}", flush=True)


class Runner:
    """Runs the binary, classifying each outcome."""

    def __init__(self, binary):
        self.binary = binary
        self.panics = 0
        self.aborts = 0
        self.hangs = 0
        self.runs = 0

    def __call__(self, args, cwd, timeout=HANG_SECONDS, env=None):
        self.runs += 1
        full_env = dict(os.environ, **(env or {}))
        try:
            p = subprocess.run([self.binary, *args], cwd=cwd, capture_output=True, text=True,
                               timeout=timeout, env=full_env, errors="replace")
        except subprocess.TimeoutExpired:
            self.hangs += 1
            return 124, "", f"timed out after {timeout} s"
        if p.returncode == 101 or "panicked at" in p.stderr:
            self.panics += 1
        if p.returncode < 0:
            self.aborts += 1
        return p.returncode, p.stdout, p.stderr


def tree_digest(root):
    """Digest of the artifact's files under `root` (names and bytes); the entry's metadata (stat
    stamps, timings) is not artifact content."""
    h = hashlib.blake2b()
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.name != ".apitune-entry.json")
    if any(p.name == "report.json" for p in files):
        # A report renders the same rows as report.json into its other files; the wall-clock
        # seconds it quotes are compared out of report.json below.
        files = [p for p in files if p.name == "report.json"]
    for path in files:
        h.update(str(path.relative_to(root)).encode())
        data = path.read_bytes()
        if path.name == "report.json":
            # The report quotes each training arm's wall-clock seconds (a run fact, outside every
            # digest upstream); everything else in it must be identical.
            data = re.sub(rb'"seconds": [0-9.e+-]+', b'"seconds": _', data)
        h.update(data)
    return h.hexdigest()


def artifacts(cache):
    root = Path(cache) / "artifacts"
    return {d.name: tree_digest(d) for d in sorted(root.iterdir())} if root.is_dir() else {}


def kill_trials(run, tally, project, reference, rng, trials, seconds):
    corrupt = wrong = killed = rekilled = 0
    for trial in range(trials):
        cache = project / f"kill{trial}"
        p = subprocess.Popen([run.binary, "--cache", str(cache), "run", "m.toml"], cwd=project,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, seconds))
        if p.poll() is None:
            killed += 1
            p.send_signal(signal.SIGKILL)
        p.wait()
        if trial % 2 == 0:
            # Kill the resume too.
            p = subprocess.Popen([run.binary, "--cache", str(cache), "run", "m.toml"], cwd=project,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, seconds / 2))
            if p.poll() is None:
                rekilled += 1
                p.send_signal(signal.SIGKILL)
            p.wait()
        code, _, err = run(["--cache", str(cache), "verify"], project)
        if code != 0:
            corrupt += 1
            print(f"  trial {trial}: verify after kill exited {code}: {err.strip()[:300]}")
        code, _, err = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        if code != 0:
            wrong += 1
            print(f"  trial {trial}: resume exited {code}: {err.strip()[-300:]}")
        elif (got := artifacts(cache)) != reference:
            corrupt += 1
            differ = sorted(set(got) ^ set(reference)) + [k for k in got if k in reference and got[k] != reference[k]]
            print(f"  trial {trial}: artifacts differ from the uninterrupted run: {differ}")
            if os.environ.get("CAMPAIGN_KEEP"):
                shutil.copytree(cache, Path(os.environ["CAMPAIGN_KEEP"]) / f"trial{trial}", symlinks=True)
                shutil.copytree(project / "reference", Path(os.environ["CAMPAIGN_KEEP"]) / "reference",
                                symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
    tally.add("kill -9", f"run killed ({killed} mid-run, {rekilled} again on resume)", trials,
              corrupt + wrong, "verify passes, resume gives identical bytes")


def kill_maintenance(run, tally, project, reference_cache, rng, trials):
    bad = 0
    for trial in range(trials):
        cache = project / f"maint{trial}"
        shutil.copytree(reference_cache, cache, symlinks=True)
        # Damage one artifact so repair has work to do, and leave an unreachable entry for gc.
        target = next(p for p in sorted((cache / "artifacts").rglob("*")) if p.is_file())
        os.chmod(target, 0o644)
        with open(target, "r+b") as f:
            f.write(b"\x00")
        command = ["verify", "--repair"] if trial % 2 == 0 else ["gc", "m.toml"]
        p = subprocess.Popen([run.binary, "--cache", str(cache), *command], cwd=project,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.3))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        run(["--cache", str(cache), "verify", "--repair"], project)
        code, _, err = run(["--cache", str(cache), "verify"], project)
        code2, _, _ = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        if code != 0 or code2 != 0:
            bad += 1
            print(f"  trial {trial}: after a killed {' '.join(command)}: verify {code}, run {code2}: {err[:200]}")
        shutil.rmtree(cache, ignore_errors=True)
    tally.add("kill -9", "verify --repair / gc killed, then repaired and rerun", trials, bad)


def concurrency(run, tally, project, reference_cache):
    bad = 0
    scenarios = [
        (["run", "m.toml"], ["run", "m.toml"]),
        (["run", "m.toml"], ["gc", "m.toml"]),
        (["run", "m.toml"], ["verify", "--repair"]),
        (["verify", "--repair"], ["gc", "m.toml"]),
        (["run", "m.toml"], ["status", "m.toml"]),
    ]
    for i, (first, second) in enumerate(scenarios):
        cache = project / f"conc{i}"
        shutil.copytree(reference_cache, cache, symlinks=True)
        # A stale arm, so `run` writes: drop the report entry's index by removing the report stage's
        # artifact through gc of a smaller manifest would be slow; forcing `-f report` is simpler.
        a = subprocess.Popen([run.binary, "--cache", str(cache), *first, *(["-f", "lora"] if first[0] == "run" else [])],
                             cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        code_b, _, err_b = run(["--cache", str(cache), *second], project, timeout=600)
        out_a, err_a = a.communicate(timeout=600)
        codes = (a.returncode, code_b)
        readonly_second = second[0] == "status"
        ok = all(c in (0, 1, 4) for c in codes) and (readonly_second or 4 in codes or codes == (0, 0))
        code, _, verr = run(["--cache", str(cache), "verify"], project)
        if not ok or code != 0:
            bad += 1
            print(f"  {first} | {second}: exits {codes}, verify {code}: {err_b[:200]} {verr[:200]}")
        shutil.rmtree(cache, ignore_errors=True)
    tally.add("concurrency", "two commands on one cache (runs share it; maintenance beside a run: exit 4; never corrupt)", len(scenarios), bad)


def flip(path):
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def cache_damage(run, tally, project, reference_cache):
    results = []

    def trial(name, fn):
        cache = project / "damage"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(reference_cache, cache, symlinks=True)
        try:
            problem = fn(cache)
        except Exception as e:  # a broken scenario is a failure, not a crash of the campaign
            problem = f"scenario error: {e}"
        results.append((name, problem))
        if problem and problem != "SKIP":
            print(f"  {name}: {problem}")
        shutil.rmtree(cache, ignore_errors=True)

    def adapter_flip(cache):
        target = next((cache / "artifacts").rglob("adapter_model.safetensors"))
        flip(target)
        c1, out, err = run(["--cache", str(cache), "status", "--exit-code", "m.toml"], project)
        c2, _, _ = run(["--cache", str(cache), "check", "m.toml"], project)
        c3, out3, _ = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        c4, _, _ = run(["--cache", str(cache), "verify"], project)
        if (c1, c2, c3, c4) != (1, 1, 0, 0) or "damaged" not in out + err:
            return f"status {c1}, check {c2}, run {c3}, verify {c4}"
        return None

    def samples_flip(cache):
        target = next((cache / "artifacts").rglob("samples.jsonl"))
        flip(target)
        c1, _, _ = run(["--cache", str(cache), "check", "m.toml"], project)
        c2, _, _ = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        return None if (c1, c2) == (1, 0) else f"check {c1}, run {c2}"

    def memo_damage(cache):
        memos = sorted((cache / "memo").rglob("*.jsonl"))
        if not memos:
            return "no memo files"
        os.chmod(memos[0], 0o644)
        with open(memos[0], "r+b") as f:
            f.seek(10)
            f.write(b"\xff\xfe")
        c1, out, err = run(["--cache", str(cache), "verify"], project)
        c2, _, err2 = run(["--cache", str(cache), "run", "-f", "m.toml", "eval"], project, timeout=600)
        if c1 != 1 or c2 != 0:
            return f"verify {c1}, run -f eval {c2}: {err2[-200:]}"
        return None

    def linked_tmp(cache):
        victim = project / "victim"
        victim.mkdir(exist_ok=True)
        (victim / "keep.txt").write_text("mine")
        shutil.rmtree(cache / "tmp", ignore_errors=True)
        (cache / "tmp").symlink_to(victim)
        codes = [run(["--cache", str(cache), *c], project)[0]
                 for c in (["run", "m.toml"], ["verify"], ["verify", "--repair"], ["gc", "m.toml"])]
        kept = (victim / "keep.txt").exists()
        shutil.rmtree(victim)
        return None if kept and all(c == 2 for c in codes) else f"exits {codes}, victim kept {kept}"

    def foreign_dir(cache):
        foreign = project / "foreign"
        (foreign / "artifacts").mkdir(parents=True, exist_ok=True)
        (foreign / "tmp").mkdir(exist_ok=True)
        (foreign / "artifacts" / "mine.txt").write_text("mine")
        (foreign / "tmp" / "mine.txt").write_text("mine")
        codes = [run(["--cache", str(foreign), *c], project)[0]
                 for c in (["verify"], ["verify", "--repair"], ["gc", "m.toml"], ["run", "m.toml"])]
        kept = (foreign / "artifacts" / "mine.txt").exists() and (foreign / "tmp" / "mine.txt").exists()
        shutil.rmtree(foreign)
        return None if kept and all(c == 2 for c in codes) else f"exits {codes}, files kept {kept}"

    def truncated_index(cache):
        index = cache / "index.sled"
        files = sorted(p for p in index.rglob("*") if p.is_file()) if index.is_dir() else [index]
        for f in files:
            os.chmod(f, 0o644)
            f.write_bytes(f.read_bytes()[: max(0, f.stat().st_size // 3)])
        code, _, err = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        return None if code in (0, 2, 3) and "panicked" not in err else f"run {code}: {err[-200:]}"

    def deleted_file(cache):
        target = next((cache / "artifacts").rglob("train.jsonl"))
        os.chmod(target.parent, 0o755)
        target.unlink()
        c1, _, _ = run(["--cache", str(cache), "check", "m.toml"], project)
        c2, _, _ = run(["--cache", str(cache), "run", "m.toml"], project, timeout=600)
        c3, _, _ = run(["--cache", str(cache), "verify"], project)
        return None if (c1, c2, c3) == (1, 0, 0) else f"check {c1}, run {c2}, verify {c3}"

    def readonly_cache(cache):
        for p in [cache, *cache.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o555)
        code, _, err = run(["--cache", str(cache), "run", "-f", "m.toml", "report"], project)
        for p in [cache, *cache.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        if os.geteuid() == 0:
            return "SKIP"  # root writes anyway; the regression test covers this as non-root
        return None if code == 4 else f"run {code}: {err[-200:]}"

    for name, fn in [("bit-flipped adapter: detected before use, recomputed", adapter_flip),
                     ("bit-flipped eval samples: check fails, run recomputes", samples_flip),
                     ("corrupted memo: named by verify, regenerated", memo_damage),
                     ("symlinked tmp/: refused, target untouched", linked_tmp),
                     ("foreign directory as --cache: refused, untouched", foreign_dir),
                     ("truncated index: no panic", truncated_index),
                     ("deleted artifact file: check fails, run recomputes", deleted_file),
                     ("read-only cache: exit 4", readonly_cache)]:
        trial(name, fn)
    for name, problem in results:
        if problem == "SKIP":
            print(f"skip cache damage {name}: not meaningful as root")
            continue
        tally.add("cache damage", name, 1, 1 if problem else 0)


def located(err):
    return any(line.startswith("error: m.toml:") for line in err.splitlines())


def manifests(run, tally, project, base_text):
    bad_cases = {
        "stage name of 70,000 characters": base_text.replace("[stages.report]", f"[stages.{'r' * 70000}]"),
        "empty stage name": base_text.replace("[stages.report]", '[stages.""]'),
        "undeclared model": base_text.replace('model = "tiny"', 'model = "nope"'),
        "r = 0": base_text.replace("r = 4,", "r = 0,"),
        "n_head = 3 with n_embd = 64": base_text.replace("n_head = 2", "n_head = 3"),
        "vocab_size = 0": base_text.replace("n_positions = 256", "n_positions = 256, vocab_size = 0"),
        "n_layer = 1000000000": base_text.replace("n_layer = 1", "n_layer = 1000000000"),
        "n_embd = 4000000000": base_text.replace("n_embd = 64", "n_embd = 4000000000"),
        "micro_batch = 0": base_text.replace("micro_batch = 16", "micro_batch = 0"),
        "grad_accum = 0": base_text.replace("micro_batch = 16", "micro_batch = 16, grad_accum = 0"),
        "lr = -1": base_text.replace("lr = 5e-3", "lr = -1"),
        "lr = nan": base_text.replace("lr = 5e-3", "lr = nan"),
        "dropout = 2.0": base_text.replace("alpha = 8,", "alpha = 8, dropout = 2.0,"),
        "epochs = 1e300": base_text.replace("epochs = 1, micro_batch = 16", "epochs = 1e300, micro_batch = 16"),
        "targets = []": base_text.replace('targets = ["c_attn"]', "targets = []"),
        'needs = "b" (a string)': base_text.replace('needs = ["ingest"]', 'needs = "ingest"'),
        "invalid UTF-8": None,
        "3,000-deep dotted key": base_text.replace("[stages.ingest]", ".".join(["a"] * 3000) + " = 1\n\n[stages.ingest]"),
        "100x100x100 matrix": base_text.replace(
            "matrix = { samples = [40, 80] }",
            "matrix = { " + ", ".join(f'"lora.{k}" = [{", ".join(str(i) for i in range(1, 101))}]' for k in ("r", "alpha", "dropout")) + " }"),
    }
    failures = 0
    for name, text in bad_cases.items():
        path = project / "bad.toml"
        if text is None:
            path.write_bytes(base_text.encode().replace(b'name = "campaign"', b'name = "camp\xffaign"'))
        else:
            path.write_text(text)
        for command in ("validate", "plan"):
            started = time.time()
            code, _, err = run([command, "bad.toml"], project)
            took = time.time() - started
            err = err.replace("bad.toml", "m.toml")
            if code != 2 or not located(err) or took > 10:
                failures += 1
                print(f"  {name}: {command} exited {code} in {took:.1f} s: {err.strip()[:300]}")
    tally.add("manifests", "hand-written invalid manifests: exit 2, located, < 10 s", 2 * len(bad_cases), failures)

    # Chained stages: validate time must grow near-linearly.
    times = {}
    for n in (2000, 4000, 20000):
        chain = ['[experiment]\nname = "c"\n']
        for i in range(n):
            needs = f'needs = ["s{i - 1}"]\n' if i else ""
            chain.append(f'[stages.s{i}]\nkind = "command"\n{needs}run = "true"\n')
        (project / "chain.toml").write_text("\n".join(chain))
        started = time.time()
        code, _, _ = run(["validate", "chain.toml"], project, timeout=60)
        times[n] = (time.time() - started, code)
    slow = times[20000][0] > 10 * max(times[2000][0], 0.05) or any(c != 0 for _, c in times.values())
    tally.add("manifests", "2,000 / 4,000 / 20,000 chained stages validate", 3, int(slow),
              " ".join(f"{n}: {t:.2f} s" for n, (t, _) in times.items()))


def ingest_sources(run, tally, project, specs):
    failures = []

    def manifest(source_dir, extra=""):
        (project / "ingest.toml").write_text(
            f'[experiment]\nname = "i"\n\n[stages.ingest]\nkind = "ingest"\nsource = {{ openapi = "{source_dir}" }}\n{extra}')

    one = next(iter(sorted(Path(specs).glob("*.yaml"))))
    loop = project / "loop"
    loop.mkdir()
    shutil.copy(one, loop)
    (loop / "l1").symlink_to(loop)
    (loop / "l2").symlink_to(loop)
    manifest("loop")
    for command in (["validate"], ["plan"], ["run"]):
        started = time.time()
        code, out, err = run(["--cache", str(project / "icache"), *command, "ingest.toml"], project)
        if code != 0 or time.time() - started > 10:
            failures.append(f"symlink loop: {command[0]} exited {code}: {err[:200]}")
    outside = project / "outside"
    outside.mkdir()
    shutil.copy(one, outside / "secret.yaml")
    (loop / "escape").symlink_to(outside)
    manifest("loop", "follow_links = true\n")
    code, out, err = run(["--cache", str(project / "icache2"), "run", "ingest.toml"], project)
    records = list((project / "icache2" / "artifacts").rglob("records.jsonl"))
    count = sum(1 for _ in open(records[0])) if records else -1
    single = project / "single"
    single.mkdir()
    shutil.copy(one, single)
    manifest("single")
    run(["--cache", str(project / "icache3"), "run", "ingest.toml"], project)
    expected = sum(1 for _ in open(next((project / "icache3" / "artifacts").rglob("records.jsonl"))))
    if code != 0 or count != expected or "secret" in "".join(open(records[0]) if records else []):
        failures.append(f"follow_links over loops and an escape: exit {code}, {count} records (one copy: {expected})")
    deep = project / "deep"
    deep.mkdir()
    (deep / "spec.yaml").write_text("openapi: 3.0.0\nx: " + "[" * 100_000 + "]" * 100_000 + "\n")
    manifest("deep")
    started = time.time()
    code, _, err = run(["--cache", str(project / "icache4"), "run", "ingest.toml"], project)
    took = time.time() - started
    if code not in (2, 3) or took > 5 or "spec.yaml" not in err:
        failures.append(f"100,000-deep YAML: exit {code} in {took:.1f} s: {err[:200]}")
    for f in failures:
        print("  " + f)
    tally.add("ingest", "symlink loops, escapes, 100,000-deep YAML", 6, len(failures))


def models(run, tally, project, reference_cache):
    fixtures = REPO / "tests" / "fixtures" / "models"
    failures = 0
    trials = 0
    import json
    for name in sorted(p.name for p in fixtures.iterdir() if (p / "config.json").exists()):
        cases = []
        config = json.loads((fixtures / name / "config.json").read_text())
        layer_key = "num_hidden_layers" if "num_hidden_layers" in config else "n_layer"
        embd_key = "hidden_size" if "hidden_size" in config else "n_embd"
        for key, value in ((layer_key, 1_000_000_000), (embd_key, 4_000_000_000), ("vocab_size", 0),
                           ("vocab_size", 10**12), (layer_key, -1), (layer_key, "x")):
            cases.append(("config", key, value))
        cases.append(("tokenizer-ids", None, None))
        cases.append(("flip-weights", None, None))
        cases.append(("truncate-weights", None, None))
        cases.append(("nan-weights", None, None))
        for kind, key, value in cases:
            trials += 1
            model = project / f"model-{name}"
            shutil.rmtree(model, ignore_errors=True)
            shutil.copytree(fixtures / name, model)
            if kind == "config":
                c = dict(config)
                c[key] = value
                (model / "config.json").write_text(json.dumps(c))
            elif kind == "tokenizer-ids":
                t = json.loads((model / "tokenizer.json").read_text())
                vocab = t["model"]["vocab"]
                first = next(iter(vocab))
                vocab[first] = 10**6
                (model / "tokenizer.json").write_text(json.dumps(t))
            else:
                weights = next(model.glob("*.safetensors"))
                data = bytearray(weights.read_bytes())
                if kind == "flip-weights":
                    data[9] ^= 0x40  # inside the header length or JSON
                elif kind == "truncate-weights":
                    data = data[: len(data) - 17]
                else:
                    header = int.from_bytes(data[:8], "little")
                    data[8 + header: 8 + header + 4] = b"\x00\x00\xc0\x7f"  # a NaN
                weights.write_bytes(bytes(data))
            for command in (["generate", "--model", str(model), "--max-new-tokens", "2", "hi"],
                            ["score", "--model", str(model), "--prompt", "a", "--target", "b"]):
                code, _, err = run(command, project)
                if code != 2 or "error" not in err:
                    failures += 1
                    print(f"  {name} {kind} {key}={value}: {command[0]} exited {code}: {err.strip()[:200]}")
    tally.add("models", "damaged configs, tokenizers and weights: exit 2", 2 * trials, failures)


def security(run, tally, project, base_text):
    failures = []
    text = base_text.replace('needs = ["eval", "lora"]', 'needs = ["eval", "lora"]') + \
        '\n[stages.leak]\nkind = "command"\nrun = "true"\ndeps = ["/etc/shadow", "../../../../etc/passwd"]\n'
    (project / "leak.toml").write_text(text)
    code, _, err = run(["validate", "leak.toml"], project)
    code2, _, _ = run(["--cache", str(project / "scache"), "run", "leak.toml", "leak"], project)
    if code != 2 or code2 != 2:
        failures.append(f"deps outside the project: validate {code}, run {code2}")
    (project / "wide.toml").write_text(
        '[experiment]\nname = "w"\n\n[stages.w]\nkind = "command"\n'
        'run = "echo x > $APITUNE_OUT/f && chmod 0777 $APITUNE_OUT/f"\n')
    code, _, err = run(["--cache", str(project / "wcache"), "run", "wide.toml"], project)
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (project / "wcache" / "artifacts").rglob("f")]
    if code != 0 or not modes or any(m & 0o222 for m in modes):
        failures.append(f"0777 output: exit {code}, published modes {[oct(m) for m in modes]} {err[:200]}")
    cache = project / "pcache"
    cache.mkdir()
    p = subprocess.run(f"'{run.binary}' --cache '{cache}' status m.toml | true", shell=True, cwd=project,
                       capture_output=True, text=True)
    if "panicked" in p.stderr:
        failures.append("closed pipe panics")
    for f in failures:
        print("  " + f)
    tally.add("security", "outside deps, world-writable outputs, closed pipe", 3, len(failures))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "apitune"))
    parser.add_argument("--kill-trials", type=int, default=32)
    parser.add_argument("--maintenance-trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    if not Path(binary).exists():
        sys.exit(f"no binary at {binary}: run `cargo build --release` or pass --binary")
    rng = random.Random(args.seed)
    run = Runner(binary)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="apitune-campaign-") as tmp:
        project = Path(tmp)
        (project / ".git").mkdir()  # the project root: inputs must come from inside it
        specs = project / "specs"
        shutil.copytree(REPO / "experiments" / "data" / "specs", specs)
        base_text = MINI.format(specs="specs")
        (project / "m.toml").write_text(base_text)
        reference_cache = project / "reference"
        started = time.time()
        code, _, err = run(["--cache", str(reference_cache), "run", "m.toml"], project, timeout=600)
        seconds = time.time() - started
        if code != 0:
            sys.exit(f"the reference run failed ({code}): {err}")
        reference = artifacts(reference_cache)
        print(f"reference run: {len(reference)} artifacts in {seconds:.1f} s", flush=True)
        kill_trials(run, tally, project, reference, rng, args.kill_trials, seconds)
        kill_maintenance(run, tally, project, reference_cache, rng, args.maintenance_trials)
        concurrency(run, tally, project, reference_cache)
        cache_damage(run, tally, project, reference_cache)
        manifests(run, tally, project, base_text)
        ingest_sources(run, tally, project, specs)
        models(run, tally, project, reference_cache)
        security(run, tally, project, base_text)
    failed = sum(1 for row in tally.rows if row[3])
    print(f"\n{run.runs} commands: {run.panics} panics, {run.aborts} aborts, {run.hangs} hangs; "
          f"{failed} of {len(tally.rows)} scenarios failed")
    sys.exit(1 if failed or run.panics or run.aborts or run.hangs else 0)


if __name__ == "__main__":
    main()
