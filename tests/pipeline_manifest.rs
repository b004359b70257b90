//! Manifest checking through the CLI: every bad manifest exits 2 with a located message.

mod common;

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
        apitune::manifest::schema::manifest_schema_json(),
        "schemas/manifest.schema.json is stale: regenerate with `cargo run -- schema > schemas/manifest.schema.json`"
    );
}
