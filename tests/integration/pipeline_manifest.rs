//! Manifest checking through the CLI: every bad manifest exits 2 with a located message.

use crate::common;

use common::Project;

const GOOD: &str = r#"
[experiment]
name = "t"
seed = 3

[stages.prep]
kind = "command"
run = "echo prep > $APITUNE_OUT/prep.txt"

[stages.train]
kind = "command"
needs = ["prep"]
run = "echo $N > $APITUNE_OUT/n.txt"
matrix = { "env.N" = ["1", "2", "3"] }

[stages.eval]
kind = "command"
needs = ["train", "prep"]
run = "cat $APITUNE_INPUT_TRAIN/n.txt > $APITUNE_OUT/score.txt"

[expect]
"eval[env.N=1].score" = { min = 0.0 }
"#;

fn project_with(text: &str) -> Project {
    let p = Project::new();
    p.write("m.toml", text);
    p
}

#[test]
fn good_manifest_validates_and_expands_matrix_with_fan_out() {
    let p = project_with(GOOD);
    let out = p.run(&["validate", "m.toml"]);
    out.expect_code(0);
    assert!(
        out.stdout().contains("3 stages, 7 arms"),
        "{}",
        out.stdout()
    );
    let dag = p.run(&["dag", "m.toml"]);
    dag.expect_code(0);
    let text = dag.stdout();
    for arm in [
        "prep (command)",
        "train[env.N=2] (command)  <- prep",
        "eval[env.N=3] (command)  <- train[env.N=3], prep",
    ] {
        assert!(text.contains(arm), "missing `{arm}` in\n{text}");
    }
}

#[test]
fn dag_renders_dot_and_mermaid() {
    let p = project_with(GOOD);
    let dot = p.run(&["dag", "m.toml", "--format", "dot"]);
    assert!(
        dot.expect_code(0)
            .stdout()
            .contains("\"prep\" -> \"train[env.N=1]\";"),
        "{}",
        dot.stdout()
    );
    let mer = p.run(&["dag", "m.toml", "--format", "mermaid"]);
    assert!(mer.expect_code(0).stdout().starts_with("flowchart LR\n"));
    assert_eq!(mer.stdout().matches("-->").count(), 9, "{}", mer.stdout());
}

#[track_caller]
fn assert_error(text: &str, args: &[&str], expected: &[&str]) {
    let p = project_with(text);
    let mut all = vec!["validate", "m.toml"];
    all.extend(args);
    let out = p.run(&all);
    out.expect_code(2);
    let err = out.stderr();
    for e in expected {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
}

#[test]
fn unknown_key_is_located_with_did_you_mean() {
    let text = GOOD.replace("run = \"echo prep", "rnu = \"x\"\nrun = \"echo prep");
    assert_error(
        &text,
        &[],
        &["m.toml:8:1:", "unknown field `rnu`", "did you mean `run`?"],
    );
}

#[test]
fn unknown_section_and_kind_are_located() {
    let text = GOOD.replace("[expect]", "[expects]");
    assert_error(
        &text,
        &[],
        &[
            "m.toml:21:2:",
            "unknown section `expects`",
            "did you mean `[expect]`?",
        ],
    );
    let text = GOOD.replace(
        "kind = \"command\"\nrun = \"echo prep",
        "kind = \"comand\"\nrun = \"echo prep",
    );
    assert_error(
        &text,
        &[],
        &[
            "m.toml:7:8:",
            "unknown stage kind `comand`",
            "did you mean `command`?",
        ],
    );
}

#[test]
fn wrong_type_is_located() {
    let text = GOOD.replace("seed = 3", "seed = \"three\"");
    assert_error(
        &text,
        &[],
        &[
            "m.toml:4:8:",
            "invalid type: string \"three\", expected u64",
        ],
    );
}

#[test]
fn cycle_names_the_stages() {
    let text = GOOD.replace(
        "kind = \"command\"\nrun = \"echo prep",
        "kind = \"command\"\nneeds = [\"eval\"]\nrun = \"echo prep",
    );
    assert_error(
        &text,
        &[],
        &["the stages `prep`, `train`, `eval` need each other in a cycle"],
    );
}

#[test]
fn missing_need_is_located_with_suggestion() {
    let text = GOOD.replace("needs = [\"prep\"]", "needs = [\"prepp\"]");
    assert_error(
        &text,
        &[],
        &[
            "m.toml:12:10:",
            "stage `train` needs `prepp`, which is not a stage",
            "did you mean `prep`?",
        ],
    );
}

#[test]
fn bad_matrix_is_located() {
    let text = GOOD.replace("[\"1\", \"2\", \"3\"]", "[\"1\", \"1\"]");
    assert_error(
        &text,
        &[],
        &["m.toml:14:22:", "matrix axis `env.N` lists `1` twice"],
    );
    let text = GOOD.replace("[\"1\", \"2\", \"3\"]", "[]");
    assert_error(&text, &[], &["matrix axis `env.N` has no values"]);
    let text = GOOD.replace("\"env.N\" = [\"1\", \"2\", \"3\"]", "runn = [\"a\", \"b\"]");
    assert_error(
        &text,
        &[],
        &[
            "m.toml:14:12:",
            "unknown field `runn`",
            "did you mean `run`?",
        ],
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = GOOD
        .replace("seed = 3", "seed = -1")
        .replace("needs = [\"prep\"]", "needs = [\"nope\"]")
        .replace("[expect]", "[expectt]");
    let p = project_with(&text);
    let out = p.run(&["validate", "m.toml"]);
    out.expect_code(2);
    let err = out.stderr();
    assert!(err.contains("3 errors"), "{err}");
}

#[test]
fn overrides_are_type_checked_and_paths_must_exist() {
    let p = project_with(GOOD);
    p.run(&["validate", "m.toml", "-S", "experiment.seed=11"])
        .expect_code(0);
    // a quoted key may contain `=`
    p.run(&[
        "validate",
        "m.toml",
        "-S",
        "expect.\"eval[env.N=1].score\".min=0.5",
    ])
    .expect_code(0);
    let cases: [(&str, &[&str]); 5] = [
        (
            "experiment.seed=abc",
            &["-S experiment.seed=abc:", "expected u64"],
        ),
        (
            "experiment.sed=1",
            &[
                "-S experiment.sed=1:",
                "unknown field `sed`",
                "did you mean `seed`?",
            ],
        ),
        (
            "stages.trian.run=x",
            &[
                "-S stages.trian.run=x:",
                "no `trian` in `stages`",
                "did you mean `train`?",
            ],
        ),
        (
            "stagez.prep.run=x",
            &["unknown path", "did you mean `stages`?"],
        ),
        ("no-equals-sign", &["expected `path=value`"]),
    ];
    for (arg, expected) in cases {
        let out = p.run(&["validate", "m.toml", "-S", arg]);
        out.expect_code(2);
        for e in expected {
            assert!(
                out.stderr().contains(e),
                "-S {arg}: expected `{e}` in:\n{}",
                out.stderr()
            );
        }
    }
}

#[test]
fn expectation_must_name_an_arm() {
    let text = GOOD.replace("\"eval[env.N=1].score\"", "\"evl[env.N=1].score\"");
    assert_error(
        &text,
        &[],
        &[
            "`evl[env.N=1].score` names no arm",
            "did you mean `eval[env.N=1]`?",
        ],
    );
}

#[test]
fn invalid_toml_is_located() {
    assert_error(
        "[experiment]\nname = \"x\nseed = 1\n",
        &[],
        &["m.toml:2:", "invalid TOML"],
    );
}

#[test]
fn unknown_target_is_a_usage_error() {
    let p = project_with(GOOD);
    let out = p.run(&["plan", "m.toml", "evall"]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("did you mean `eval`?"),
        "{}",
        out.stderr()
    );
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/manifest.schema.json"))
        .expect("schemas/manifest.schema.json exists; regenerate with `apitune schema > schemas/manifest.schema.json`");
    assert_eq!(
        committed,
        apitune::pipeline::schema::manifest_schema_json(),
        "schemas/manifest.schema.json is stale: regenerate with `cargo run -- schema > schemas/manifest.schema.json`"
    );
}

/// A study with every ML stage kind, valid as written; the tests below break one value each.
const STUDY: &str = r#"[experiment]
name = "s"
seed = 1

[models.tiny]
arch = "gpt2"
init = "random"
config = { n_layer = 2, n_embd = 128, n_head = 4, n_positions = 512 }
tokenizer = { train_bpe = { vocab_size = 1024 } }

[stages.ingest]
kind = "ingest"
source = { jsonl = "records.jsonl" }

[stages.split]
kind = "normalize"
needs = ["ingest"]
heldout = { level1 = 2, level2 = 2, level3 = 2 }

[stages.pretrain]
kind = "pretrain"
needs = ["split"]
model = "tiny"
train = { lr = 5e-3, epochs = 1, micro_batch = 4, max_len = 256, warmup = 0.1 }

[stages.lora]
kind = "lora-train"
needs = ["split", "pretrain"]
samples = 8
lora = { r = 4, alpha = 8, dropout = 0.0, targets = ["c_attn"] }
train = { lr = 1e-2, steps = 2, micro_batch = 2, grad_accum = 1, max_len = 256 }

[stages.eval]
kind = "eval"
needs = ["split", "lora", "pretrain"]
limit = 3
decoding = { max_new_tokens = 16, temperature = 0.0 }
"#;

/// `m.toml:LINE:COL:` of the first occurrence of `needle` in `text`.
fn at(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the manifest"));
    let line = text[..offset].matches('\n').count() + 1;
    let col = text[..offset].rsplit('\n').next().unwrap().chars().count() + 1;
    format!("m.toml:{line}:{col}:")
}

#[test]
fn study_manifest_validates() {
    project_with(STUDY)
        .run(&["validate", "m.toml"])
        .expect_code(0);
}

#[test]
fn what_fails_at_run_time_fails_validate_with_the_valid_range() {
    // (replace, with, located at the first occurrence of, message)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "model = \"tiny\"",
            "model = \"nope\"",
            "\"nope\"",
            "unknown model `nope`",
        ),
        (
            "samples = 8",
            "samples = 8\nmodel = \"nope\"",
            "\"nope\"",
            "unknown model `nope`",
        ),
        (
            "limit = 3",
            "limit = 3\nmodel = \"nope\"",
            "\"nope\"",
            "unknown model `nope`",
        ),
        (
            "r = 4,",
            "r = 0,",
            "0, alpha",
            "lora.r must be between 1 and 4096, got 0",
        ),
        (
            "n_head = 4",
            "n_head = 3",
            "3, n_positions",
            "config.n_head: 3 attention heads do not divide the hidden size 128",
        ),
        (
            "n_layer = 2",
            "n_layer = 1000000000",
            "1000000000",
            "config.n_layer: 1000000000 is out of range; expected 1 to 1024",
        ),
        (
            "n_embd = 128",
            "n_embd = 4000000000",
            "4000000000",
            "config.n_embd: 4000000000 is out of range; expected 1 to 65536",
        ),
        (
            "n_positions = 512",
            "n_positions = 512, vocab_size = 0",
            "0 }",
            "config.vocab_size: 0 is out of range; expected 1 to 4194304",
        ),
        (
            "micro_batch = 4",
            "micro_batch = 0",
            "0, max_len = 256, w",
            "train.micro_batch must be between 1 and 65536, got 0",
        ),
        (
            "grad_accum = 1",
            "grad_accum = 0",
            "0, max_len",
            "train.grad_accum must be between 1 and 65536, got 0",
        ),
        (
            "lr = 5e-3",
            "lr = -1",
            "-1",
            "train.lr must be a finite number > 0",
        ),
        (
            "lr = 5e-3",
            "lr = nan",
            "nan",
            "train.lr must be a finite number > 0",
        ),
        (
            "dropout = 0.0",
            "dropout = 2.0",
            "2.0",
            "lora.dropout must be a finite number in [0, 1), got 2",
        ),
        (
            "epochs = 1,",
            "epochs = 1e300,",
            "1e300",
            "train.epochs must be a finite number > 0 and at most 10000",
        ),
        (
            "steps = 2",
            "steps = 0",
            "0, micro_batch = 2",
            "train.steps must be between 1 and 10000000, got 0",
        ),
        (
            "targets = [\"c_attn\"]",
            "targets = []",
            "[]",
            "lora.targets must list at least one module name",
        ),
        (
            "needs = [\"ingest\"]",
            "needs = \"ingest\"",
            "\"ingest\"\nheldout",
            "`needs` must be an array of stage names",
        ),
        (
            "[stages.eval]",
            "[stages.\"\"]",
            "\"\"]",
            "stage name is empty",
        ),
        (
            "warmup = 0.1",
            "warmup = -0.5",
            "-0.5",
            "train.warmup must be a finite number in [0, 10000000], got -0.5",
        ),
        (
            "max_len = 256, warmup",
            "max_len = 1024, warmup",
            "1024, warmup",
            "train.max_len 1024 exceeds the 512 positions of model `tiny`",
        ),
        (
            "max_new_tokens = 16",
            "max_new_tokens = 0",
            "0, temp",
            "decoding.max_new_tokens must be between 1 and 1048576, got 0",
        ),
        (
            "temperature = 0.0",
            "temperature = nan",
            "nan",
            "decoding.temperature must be a finite number in [0, 100]",
        ),
        (
            "temperature = 0.0",
            "temperature = 0.5, top_p = 1.5",
            "1.5",
            "decoding.top_p must be a finite number in (0, 1], got 1.5",
        ),
        (
            "limit = 3",
            "limit = 0",
            "0\ndecoding",
            "limit must be between 1 and 1000000000, got 0",
        ),
        (
            "limit = 3",
            "batch_size = 0",
            "0\ndecoding",
            "batch_size must be between 1 and 65536, got 0",
        ),
        (
            "level3 = 2 }",
            "level3 = 2 }\nsamples = 0",
            "0\n\n[stages.pretrain]",
            "samples must be between 1 and 1000000000, got 0",
        ),
        (
            "vocab_size = 1024",
            "vocab_size = 10",
            "10 }",
            "tokenizer.train_bpe.vocab_size must be an integer between 257 and 4194304",
        ),
        (
            "init = \"random\"",
            "init = \"zeros\"",
            "\"zeros\"",
            "`init` must be \"random\"",
        ),
    ];
    for (from, to, needle, message) in cases {
        assert!(STUDY.contains(from), "`{from}` not in STUDY");
        let text = STUDY.replacen(from, to, 1);
        let where_ = at(&text, needle);
        assert_error(&text, &[], &[&where_, message]);
    }
}

#[test]
fn oversized_random_model_is_rejected_against_machine_memory() {
    let text = STUDY.replace(
        "n_layer = 2, n_embd = 128, n_head = 4",
        "n_layer = 1024, n_embd = 65536, n_head = 64",
    );
    assert_error(
        &text,
        &[],
        &[
            &at(&text, "{ n_layer"),
            "GiB as f32 weights, more than this machine's",
        ],
    );
}

#[test]
fn stage_and_model_names_are_short_and_safe() {
    let long = "a".repeat(70_000);
    let text = GOOD.replace("[stages.prep]", &format!("[stages.{long}]"));
    let p = project_with(&text);
    for command in ["validate", "plan", "dag"] {
        let out = p.run(&[command, "m.toml"]);
        out.expect_code(2);
        let err = out.stderr();
        assert!(
            err.contains("m.toml:6:9: stage name `aaaa")
                && err.contains("70000 characters long; at most 64"),
            "{command}: {}",
            &err[..err.len().min(2000)]
        );
        assert!(
            err.len() < 4000,
            "{command}: the name is not echoed in full ({} bytes)",
            err.len()
        );
    }
    let text = GOOD.replace("[stages.prep]", "[stages.\"pr ep\"]");
    assert_error(
        &text,
        &[],
        &[
            "m.toml:6:9:",
            "stage name `pr ep` contains ` `",
            "ASCII letters, digits",
        ],
    );
    let text = STUDY.replace("[models.tiny]", "[models.\"ti/ny\"]");
    assert_error(
        &text,
        &[],
        &["m.toml:5:9:", "model name `ti/ny` contains `/`"],
    );
}

fn chain(stages: usize) -> String {
    let mut text = String::from("[experiment]\nname = \"chain\"\n");
    for i in 0..stages {
        text.push_str(&format!(
            "\n[stages.s{i}]\nkind = \"command\"\nrun = \"true\"\n"
        ));
        if i > 0 {
            text.push_str(&format!("needs = [\"s{}\"]\n", i - 1));
        }
    }
    text
}

#[test]
fn twenty_thousand_chained_stages_validate_quickly() {
    let p = project_with(&chain(20_000));
    let started = std::time::Instant::now();
    let out = p.run(&["validate", "m.toml"]);
    let took = started.elapsed();
    assert!(
        out.expect_code(0)
            .stdout()
            .contains("20000 stages, 20000 arms"),
        "{}",
        out.stdout()
    );
    assert!(took.as_secs_f64() < 5.0, "validate took {took:?}");
}

#[test]
fn huge_matrices_are_rejected_before_expanding() {
    let values = (0..100)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[experiment]\nname = \"m\"\n\n[stages.a]\nkind = \"command\"\nrun = \"true\"\nmatrix = {{ \"env.A\" = [{values}], \"env.B\" = [{values}], \"env.C\" = [{values}] }}\n"
    );
    let started = std::time::Instant::now();
    assert_error(
        &text,
        &[],
        &[
            "m.toml:7:1:",
            "1000000 combinations (100 × 100 × 100)",
            "at most 100000 arms",
        ],
    );
    assert!(
        started.elapsed().as_secs_f64() < 2.0,
        "took {:?}",
        started.elapsed()
    );
    // Fan-out multiplies too: 400 arms, each fanning out into 400 more.
    let values = (0..400)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[experiment]\nname = \"m\"\n\n[stages.a]\nkind = \"command\"\nrun = \"true\"\nmatrix = {{ \"env.A\" = [{values}] }}\n\n[stages.b]\nkind = \"command\"\nneeds = [\"a\"]\nrun = \"true\"\nmatrix = {{ \"env.B\" = [{values}] }}\n"
    );
    assert_error(
        &text,
        &[],
        &[
            "m.toml:9:9:",
            "stage `b` expands to 160000 or more arms (after the 400 arms",
            "at most 100000 arms",
        ],
    );
}

#[test]
fn encoding_and_nesting_errors_are_located() {
    let p = Project::new();
    let mut bytes =
        b"[experiment]\nname = \"x\"\n\n[stages.a]\nkind = \"command\"\nrun = \"ab".to_vec();
    bytes.extend([0xff, b'"', b'\n']);
    std::fs::write(p.path().join("m.toml"), bytes).unwrap();
    let out = p.run(&["validate", "m.toml"]);
    out.expect_code(2);
    assert!(
        out.stderr()
            .contains("m.toml:6:10: the manifest is not valid UTF-8 (byte 0xff)"),
        "{}",
        out.stderr()
    );

    let deep = vec!["a"; 3000].join(".");
    let text = format!("[experiment]\nname = \"x\"\n\n{deep} = 1\n");
    assert_error(
        &text,
        &[],
        &["m.toml:4:1:", "invalid TOML: recursion limit"],
    );
    let text = format!(
        "[experiment]\nname = \"x\"\n\n[stages.a]\nkind = \"command\"\nrun = \"true\"\nx = {}1{}\n",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    assert_error(&text, &[], &["m.toml:7:", "invalid TOML"]);
    assert_error(
        "[stages.a]\nkind = \"command\"\nrun = \"true\"\n",
        &[],
        &["m.toml:1:1: missing `[experiment]` section"],
    );
    assert_error(
        "[experiment]\nname = \"x\"\n",
        &[],
        &["m.toml:1:1: the manifest declares no stages"],
    );
}
