//! Property tests: no manifest text or override, however mangled, makes apitune panic; it is either
//! accepted or rejected with located errors.

use std::path::Path;

use apitune::manifest::{Manifest, Origin};
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

fn check(text: &str, overrides: &[String]) {
    // Must not panic; errors, when any, must be located.
    match Manifest::parse_partial(Path::new("m.toml"), text, overrides) {
        Err(errors) => assert!(!errors.0.is_empty()),
        Ok((manifest, errors)) => {
            let dag = apitune::pipeline::Dag::build(&manifest);
            for d in errors
                .iter()
                .chain(dag.as_ref().err().map(|e| e.0.iter()).into_iter().flatten())
            {
                assert!(!d.message.is_empty());
                if let Origin::File { line, col, .. } = d.origin {
                    assert!(line >= 1 && col >= 1);
                }
            }
            if let Ok(dag) = dag {
                for arm in &dag.arms {
                    assert!(arm.inputs.iter().all(|i| *i < dag.arms.len()));
                }
            }
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
        check(BASE, &[path.clone()]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,200}") {
        check(&text, &[]);
    }
}
