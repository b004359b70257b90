//! Retrieved in-context examples on the bundled corpus: every query gets its API's most similar
//! records, and none leaks what its level holds out.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use apitune::data::retrieval::{
    EXAMPLES_FILE, RetrievalParams, SHOTS_FILE, ShotExample, ShotList, Shots, build_shots,
};
use apitune::data::{
    ApiRecord, DOCS_FILE, HeldoutSpec, IngestParams, LEVEL_FILES, NormalizeParams, PathPatterns,
    SourceSpec, TRAIN_FILE, prompt, prompt_with_examples, read_records, run_ingest, run_normalize,
};

fn records(path: &Path) -> Vec<ApiRecord> {
    read_records(path).collect::<Result<_, _>>().unwrap()
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ingest, split (10 per level per language) and retrieve over the bundled specs.
fn bundled_split() -> (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ingested, split, shots) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ingest = IngestParams {
        source: SourceSpec::Openapi(PathPatterns::One("experiments/data/specs".into())),
        langs: None,
        on_bad_record: Default::default(),
        limit: None,
        follow_links: false,
    };
    run_ingest(&ingest, root, ingested.path(), &|_| {}).unwrap();
    let normalize = NormalizeParams {
        heldout: HeldoutSpec {
            level1: 10,
            level2: 10,
            level3: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    run_normalize(&normalize, 7, ingested.path(), split.path()).unwrap();
    build_shots(split.path(), &RetrievalParams::default(), shots.path()).unwrap();
    (ingested, split, shots)
}

type Endpoint = (String, Option<String>, String);

fn endpoint(api: &str, method: &Option<String>, path: &str) -> Endpoint {
    (api.to_string(), method.clone(), path.to_string())
}

#[test]
fn no_retrieved_example_is_the_target_or_from_a_pool_its_level_forbids() {
    let (_ingested, split, shots_dir) = bundled_split();
    let train = records(&split.path().join(TRAIN_FILE));
    let docs = records(&split.path().join(DOCS_FILE));
    let levels: Vec<Vec<ApiRecord>> = LEVEL_FILES
        .iter()
        .map(|f| records(&split.path().join(f)))
        .collect();
    let examples: HashMap<String, ShotExample> =
        lines::<ShotExample>(&shots_dir.path().join(EXAMPLES_FILE))
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
    let lists: HashMap<String, ShotList> = lines::<ShotList>(&shots_dir.path().join(SHOTS_FILE))
        .into_iter()
        .map(|l| (l.target.clone(), l))
        .collect();
    let heldout_endpoints: BTreeSet<Endpoint> = levels[1]
        .iter()
        .map(|r| endpoint(&r.api_name, &r.method, &r.path))
        .collect();
    let level3_queries: BTreeSet<&str> = levels[2].iter().map(|r| r.instruction.as_str()).collect();
    let level3_apis: BTreeSet<&str> = levels[2].iter().map(|r| r.api_name.as_str()).collect();
    assert!(
        !docs.is_empty(),
        "the held-out APIs' documentation examples"
    );
    assert!(
        docs.iter()
            .all(|d| level3_apis.contains(d.api_name.as_str())),
        "docs hold only held-out APIs"
    );
    let by_pool_id: HashMap<String, &ApiRecord> = train
        .iter()
        .map(|r| (format!("train/{}", r.unique_id), r))
        .chain(docs.iter().map(|r| (format!("docs/{}", r.unique_id), r)))
        .collect();

    let splits = [
        ("train", &train),
        ("level1", &levels[0]),
        ("level2", &levels[1]),
        ("level3", &levels[2]),
    ];
    for (split, queries) in splits {
        let mut with_shots = 0;
        for query in queries.iter() {
            let list = &lists[&format!("{split}/{}", query.unique_id)];
            assert!(list.shots.len() <= 3);
            with_shots += usize::from(!list.shots.is_empty());
            for (position, id) in list.shots.iter().enumerate() {
                let shown = &examples[id];
                let source = by_pool_id[id];
                let context = format!("{split} query {} shot {id}", query.unique_id);
                // Level 3 draws from documentation only, the others from the training pool.
                let pool = if split == "level3" { "docs/" } else { "train/" };
                assert!(id.starts_with(pool), "{context}");
                assert_ne!(
                    source.unique_id, query.unique_id,
                    "{context}: the target itself"
                );
                assert_ne!(
                    source.code.trim(),
                    query.code.trim(),
                    "{context}: the target's output"
                );
                assert_eq!(shown.code, source.code, "{context}");
                assert_eq!(
                    (source.api_name.as_str(), source.lang.as_str()),
                    (query.api_name.as_str(), query.lang.as_str()),
                    "{context}"
                );
                let shot_endpoint = endpoint(&source.api_name, &source.method, &source.path);
                assert!(
                    !heldout_endpoints.contains(&shot_endpoint) || split == "level3",
                    "{context}: a level-2 endpoint"
                );
                if split == "level3" {
                    assert!(
                        !level3_queries.contains(shown.instruction.as_str()),
                        "{context}: a test query"
                    );
                    assert_ne!(
                        shot_endpoint,
                        endpoint(&query.api_name, &query.method, &query.path),
                        "{context}: the held-out endpoint"
                    );
                }
                // Best last: scores rise towards the query.
                if position > 0 {
                    assert!(
                        list.scores[position - 1] <= list.scores[position],
                        "{context}"
                    );
                }
            }
        }
        assert!(
            with_shots * 2 > queries.len(),
            "{split}: only {with_shots} of {} queries retrieved examples",
            queries.len()
        );
    }
}

#[test]
fn prompts_carry_the_examples_best_last_and_fall_back_to_the_study_prompt() {
    let (_ingested, split, shots_dir) = bundled_split();
    let shots = Shots::read(shots_dir.path()).unwrap();
    let level2 = records(&split.path().join(LEVEL_FILES[1]));
    let query = level2
        .iter()
        .find(|r| shots.of("level2", r).len() == 3)
        .expect("a level-2 query with three examples");
    let examples = shots.of("level2", query);
    let text = prompt_with_examples(query, &query.lang, &examples);
    let last = text.rfind(&examples[2].code).unwrap();
    let first = text.find(&examples[0].code).unwrap();
    let task = text.find("### YOUR ACTUAL TASK:").unwrap();
    assert!(
        first < last && last < task,
        "examples in order, then the task"
    );
    let plain = prompt(query, &query.lang);
    let task_part = &plain[plain.find("### USER REQUEST:").unwrap()..];
    assert!(
        text.ends_with(task_part),
        "the actual task as the study asks it"
    );
    assert_eq!(
        prompt_with_examples(query, &query.lang, &[]),
        prompt(query, &query.lang)
    );
    assert!(
        shots
            .of(
                "level2",
                &ApiRecord {
                    unique_id: "nope".into(),
                    ..query.clone()
                }
            )
            .is_empty()
    );
}
