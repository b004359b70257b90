//! Property tests: no manifest text or override, however mangled, makes apitune panic; it is either
//! accepted or rejected with located errors.

use std::path::Path;

use std::time::{Duration, Instant};

use apitune::manifest::{Diagnostic, Origin};
use apitune::pipeline::render;
use proptest::prelude::*;

const BASE: &str = r#"[experiment]
name = "p"
seed = 5

[stages.a]
kind = "command"
run = "true"
deps = []
matrix = { "env.X" = ["1", "2"] }

[stages.b]
kind = "command"
needs = ["a"]
run = "true"
env = { Y = "y" }

[stages.r]
kind = "command"
needs = ["b", "a"]
run = "true"

[expect]
"b[env.X=1].m" = { value = 1.0, tol = 0.1 }
"#;

const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "=",
    "\"",
    "\n",
    ",",
    ".",
    "needs = [\"r\"]",
    "matrix = {}",
    "kind = 1",
    "[stages.a]",
    "x = [1, [2]]",
    "\"env.X\" = [1, 1]",
    "[[stages]]",
    "seed = -3",
    "needs = \"b\"",
    "ä",
    "\u{0}",
    "#",
    "'''",
    "[expect]\n\"a.m\" = { min = 2, max = 1 }",
    "matrix = { kind = [1] }",
    "inf",
    "nan",
];

/// Every diagnostic names a place: `file:line:col`, or the `-S` argument at fault.
#[track_caller]
fn assert_located(d: &Diagnostic, overrides: &[String]) {
    assert!(!d.message.is_empty());
    match &d.origin {
        Origin::File { line, col, .. } => assert!(*line >= 1 && *col >= 1, "{d}"),
        Origin::Override(arg) => assert!(overrides.contains(arg), "{d}"),
        Origin::Whole(_) => panic!("unlocated error: {d}"),
    }
}

fn check(text: &str, overrides: &[String]) {
    check_bytes(text.as_bytes().to_vec(), overrides);
}

/// Must not panic; errors, when any, must be located; a DAG that builds renders.
fn check_bytes(bytes: Vec<u8>, overrides: &[String]) {
    match apitune::pipeline::load_bytes(Path::new("m.toml"), bytes, overrides) {
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for d in &errors.0 {
                assert_located(d, overrides);
            }
        }
        Ok((_, dag)) => {
            for arm in &dag.arms {
                assert!(arm.inputs.iter().all(|i| *i < dag.arms.len()));
            }
            render::ascii(&dag);
            render::dot(&dag);
            render::mermaid(&dag);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mangled_manifests_never_panic(cuts in prop::collection::vec((0usize..BASE.len(), 0usize..8, 0usize..FRAGMENTS.len()), 1..6)) {
        let mut text = BASE.to_string();
        for (at, delete, fragment) in cuts {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + delete).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(at..end, FRAGMENTS[fragment]);
        }
        check(&text, &[]);
    }

    #[test]
    fn arbitrary_overrides_never_panic(path in "[a-z.\\[\\]\"=X ]{0,24}", value in "[-0-9a-z.\\[\\]{}\"=, ]{0,12}") {
        check(BASE, &[format!("{path}={value}")]);
        check(BASE, std::slice::from_ref(&path));
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,200}") {
        check(&text, &[]);
    }
}

/// A study with every ML stage kind and every numeric param, for the mutation fuzzer.
const STUDY: &str = r#"[experiment]
name = "s"
seed = 1

[models.tiny]
arch = "gpt2"
init = "random"
config = { n_layer = 2, n_embd = 128, n_head = 4, n_positions = 512, n_inner = 256, initializer_range = 0.02 }
tokenizer = { train_bpe = { vocab_size = 1024 } }

[models.qwen]
arch = "qwen2"
init = "random"
config = { hidden_size = 64, intermediate_size = 128, num_hidden_layers = 1, num_attention_heads = 4, num_key_value_heads = 2, max_position_embeddings = 256 }
tokenizer = { train_bpe = { vocab_size = 512 } }

[stages.ingest]
kind = "ingest"
source = { jsonl = "records.jsonl" }
limit = 100
langs = ["python"]

[stages.split]
kind = "normalize"
needs = ["ingest"]
heldout = { level1 = 2, level2 = 2, level3 = 2 }
samples = 50
tab_width = 4

[stages.pretrain]
kind = "pretrain"
needs = ["split"]
model = "tiny"
samples = 40
matrix = { "train.lr" = [1e-3, 5e-3] }
train = { epochs = 1.5, micro_batch = 4, grad_accum = 2, max_len = 256, warmup = 0.1, weight_decay = 0.01, clip = 1.0, checkpoint_every = 5 }

[stages.lora]
kind = "lora-train"
needs = ["split", "pretrain"]
samples = 8
lora = { r = 4, alpha = 8, dropout = 0.1, targets = ["c_attn"] }
train = { lr = 1e-2, steps = 2, micro_batch = 2, max_len = 128 }

[stages.eval]
kind = "eval"
needs = ["split", "lora", "pretrain"]
limit = 3
batch_size = 2
levels = ["level1", "level2"]
decoding = { max_new_tokens = 16, temperature = 0.7, top_k = 40, top_p = 0.9, stop = ["\n\n"] }

[stages.report]
kind = "report"
needs = ["eval", "lora"]

[expect]
"eval[train.lr=0.001].syntax" = { min = 0.1, max = 1.0 }
"#;

/// What a number, string or name may become.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e300",
    "-1e300",
    "0.5",
    "1",
    "2",
    "3",
    "4000000000",
    "18446744073709551615",
    "18446744073709551616",
    "1e-300",
    "\"7\"",
    "[]",
    "{}",
    "true",
    "[1, 2]",
];
const STRINGS: &[&str] = &[
    "\"\"",
    "\"\\u0000\"",
    "\"a.b\"",
    "\"nope\"",
    "\"é\"",
    "1",
    "[]",
    "[\"\"]",
    "{}",
];

/// Deterministic xorshift; the case number seeds it, so a failure names its case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Byte ranges of tokens of `text` that `kind` selects: numbers, quoted strings, or stage names.
fn spans(text: &str, kind: usize) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        match (kind, bytes[i]) {
            (0, b'0'..=b'9') if i > 0 && matches!(bytes[i - 1], b' ' | b'[' | b'-') => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'-'))
                {
                    i += 1;
                }
                out.push((start, i));
            }
            (1, b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                out.push((start, (i + 1).min(bytes.len())));
            }
            (2, b'[') if text[i..].starts_with("[stages.") || text[i..].starts_with("[models.") => {
                let name = i + "[stages.".len();
                if let Some(len) = text[name..].find(']') {
                    out.push((name, name + len));
                    i = name + len;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// One mutation of `text` (as bytes: some mutations are not UTF-8).
fn mutate(text: &str, rng: &mut Rng) -> Vec<u8> {
    let mut text = text.to_string();
    let kind = rng.below(8);
    let pos = |rng: &mut Rng, text: &str| {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match kind {
        0..=2 => {
            let candidates = spans(&text, kind);
            if candidates.is_empty() {
                return text.into_bytes();
            }
            let (a, b) = candidates[rng.below(candidates.len())];
            let with = match kind {
                0 => rng.pick(NUMBERS).to_string(),
                1 if rng.below(4) == 0 => format!("\"{}\"", "x".repeat(70_000)),
                1 => rng.pick(STRINGS).to_string(),
                _ => match rng.below(5) {
                    0 => "a".repeat(70_000),
                    1 => "\"\"".into(),
                    2 => "a.b".into(),
                    3 => "\"a b\"".into(),
                    _ => "x".repeat(65),
                },
            };
            text.replace_range(a..b, &with);
        }
        3 => {
            let depth = [10, 100, 1000, 3000][rng.below(4)];
            let deep = match rng.below(3) {
                0 => format!("x = {}1{}", "[".repeat(depth), "]".repeat(depth)),
                1 => format!("{} = 1", vec!["a"; depth].join(".")),
                _ => format!("x = {}1{}", "{ a = ".repeat(depth), " }".repeat(depth)),
            };
            // Inside a stage table when there is one after the first, else at the end.
            let at = text
                .match_indices("\n[stages.")
                .nth(1)
                .map_or(text.len(), |(at, _)| at);
            text.insert_str(at, &format!("\n{deep}"));
        }
        4 => {
            let mut bytes = text.into_bytes();
            let at = rng.below(bytes.len());
            bytes.insert(at, [0xff, 0xc3, 0x80, 0xed][rng.below(4)]);
            return bytes;
        }
        5 => {
            let at = pos(rng, &text);
            text.insert_str(at, rng.pick(FRAGMENTS));
        }
        6 => {
            let (a, b) = (pos(rng, &text), pos(rng, &text));
            text.replace_range(a.min(b)..a.max(b).min(a.min(b) + 40), "");
        }
        _ => {
            // Same value twice: the first of two mutations must not hide the second's errors.
            let once = String::from_utf8(mutate(&text, rng)).unwrap_or_default();
            return if once.is_empty() {
                text.into_bytes()
            } else {
                mutate(&once, rng)
            };
        }
    }
    text.into_bytes()
}

#[test]
fn mutated_manifests_are_accepted_or_rejected_with_located_errors() {
    const CASES: u64 = 2400;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for case in 0..CASES {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let base = if case % 4 == 0 { BASE } else { STUDY };
        let bytes = mutate(base, &mut rng);
        let overrides: Vec<String> = match rng.below(8) {
            0 => vec![format!("stages.pretrain.train.lr={}", rng.pick(NUMBERS))],
            1 => vec![format!("models.tiny.config.n_embd={}", rng.pick(NUMBERS))],
            _ => Vec::new(),
        };
        let one = Instant::now();
        let outcome = std::panic::catch_unwind(|| check_bytes(bytes.clone(), &overrides));
        let took = one.elapsed();
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(3000)]).into_owned();
            panic!(
                "case {case} (-S {overrides:?}) failed: {}\n{shown}",
                why.unwrap_or_default()
            );
        }
        assert!(took < Duration::from_secs(10), "case {case} took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!(
        "{CASES} mutated manifests in {:?}, slowest {slowest:?}",
        started.elapsed()
    );
}
