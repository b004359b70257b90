//! Syntax correctness per language: each snippet is parsed by a parser for its own language.
//!
//! A snippet is [`Verdict::Valid`] when (1) it parses without an ERROR or MISSING node (Python:
//! without a parse error from ruff's parser, which matches CPython's `ast.parse`, unlike
//! tree-sitter-python which accepts `print "x"`), (2) it holds at least one statement that is not
//! a comment, and (3) it passes a guard for its language, because several grammars accept English
//! prose (bash reads "Here is the code" as a command, Ruby as nested method calls):
//!
//! | lang | guard |
//! |---|---|
//! | curl | the first command is `curl` |
//! | php | starts with `<?php` |
//! | ruby | an assignment, a call with a receiver (`a.b`, `A::B`), or a block |
//! | java, javascript, node, swift, libcurl | at least one call or object creation |
//! | go | starts with a `package` clause (httpsnippet emits whole programs) |
//!
//! A fenced answer (```` ``` ````) is not raw code in any language, so it is invalid; it is also
//! flagged separately. A language without a parser is [`Verdict::Unchecked`], never valid.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use tree_sitter::{Language, Node, Parser, Tree};

use super::api_match::SnippetLang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    Unchecked,
}

/// Why a snippet is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    ParseError,
    NoStatement,
    GuardFailed,
    MarkdownFence,
    UnknownLanguage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntaxCheck {
    pub verdict: Verdict,
    pub failure: Option<Failure>,
    /// The answer starts with a markdown code fence.
    pub fenced: bool,
}

impl SyntaxCheck {
    fn valid(fenced: bool) -> Self {
        Self {
            verdict: Verdict::Valid,
            failure: None,
            fenced,
        }
    }
    fn invalid(failure: Failure, fenced: bool) -> Self {
        Self {
            verdict: Verdict::Invalid,
            failure: Some(failure),
            fenced,
        }
    }
    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }
}

/// Checks a snippet given its API Pack `lang` label.
pub fn check_label(code: &str, lang_label: &str) -> SyntaxCheck {
    match SnippetLang::from_label(lang_label) {
        Some(lang) => check(code, lang),
        None => SyntaxCheck {
            verdict: Verdict::Unchecked,
            failure: Some(Failure::UnknownLanguage),
            fenced: is_fenced(code),
        },
    }
}

/// Whether the answer opens with a markdown fence (after leading whitespace).
pub fn is_fenced(code: &str) -> bool {
    let t = code.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

pub fn check(code: &str, lang: SnippetLang) -> SyntaxCheck {
    let fenced = is_fenced(code);
    if fenced {
        return SyntaxCheck::invalid(Failure::MarkdownFence, true);
    }
    if lang == SnippetLang::Python {
        return check_python(code);
    }
    if lang == SnippetLang::Php && !code.trim_start().starts_with("<?php") {
        return SyntaxCheck::invalid(Failure::GuardFailed, false);
    }
    let Some(tree) = parse_tree_sitter(code, lang) else {
        return SyntaxCheck::invalid(Failure::ParseError, false);
    };
    let root = tree.root_node();
    if root.has_error() || contains_missing(root) {
        return SyntaxCheck::invalid(Failure::ParseError, false);
    }
    let mut cursor = root.walk();
    let statements: Vec<Node> = root
        .named_children(&mut cursor)
        .filter(|n| !n.kind().contains("comment") && !matches!(n.kind(), "php_tag" | "text"))
        .collect();
    if statements.is_empty() {
        return SyntaxCheck::invalid(Failure::NoStatement, false);
    }
    if !passes_guard(code, root, &statements, lang) {
        return SyntaxCheck::invalid(Failure::GuardFailed, false);
    }
    SyntaxCheck::valid(false)
}

fn check_python(code: &str) -> SyntaxCheck {
    match ruff_python_parser::parse_module(code) {
        Ok(parsed) if parsed.syntax().body.is_empty() => {
            SyntaxCheck::invalid(Failure::NoStatement, false)
        }
        Ok(_) => SyntaxCheck::valid(false),
        Err(_) => SyntaxCheck::invalid(Failure::ParseError, false),
    }
}

/// The tree-sitter grammar of a language; Python has none here because tree-sitter-python
/// accepts code CPython rejects (it is checked with ruff's parser instead).
fn language(lang: SnippetLang) -> Option<Language> {
    Some(match lang {
        SnippetLang::Curl => tree_sitter_bash::LANGUAGE.into(),
        SnippetLang::Python => return None,
        SnippetLang::Java => tree_sitter_java::LANGUAGE.into(),
        SnippetLang::Go => tree_sitter_go::LANGUAGE.into(),
        SnippetLang::JavaScript | SnippetLang::Node => tree_sitter_javascript::LANGUAGE.into(),
        SnippetLang::Ruby => tree_sitter_ruby::LANGUAGE.into(),
        SnippetLang::Php => tree_sitter_php::LANGUAGE_PHP.into(),
        SnippetLang::Swift => tree_sitter_swift::LANGUAGE.into(),
        SnippetLang::Libcurl => tree_sitter_c::LANGUAGE.into(),
    })
}

thread_local! {
    /// One parser per language per thread: creating a parser and setting its language is cheap,
    /// but not free at 100K snippets.
    static PARSERS: RefCell<Vec<Option<Parser>>> = RefCell::new((0..SnippetLang::ALL.len()).map(|_| None).collect());
}

fn parse_tree_sitter(code: &str, lang: SnippetLang) -> Option<Tree> {
    let grammar = language(lang)?;
    let slot = SnippetLang::ALL
        .iter()
        .position(|&l| l == lang)
        .expect("every language is in ALL");
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = parsers[slot].get_or_insert_with(|| {
            let mut p = Parser::new();
            p.set_language(&grammar)
                .expect("grammar ABI is supported by this tree-sitter");
            p
        });
        parser.parse(code, None)
    })
}

fn contains_missing(node: Node) -> bool {
    any_node(node, |n| n.is_missing())
}

/// Visits every node in document order until `f` returns true.
fn any_node<'t>(root: Node<'t>, mut f: impl FnMut(Node<'t>) -> bool) -> bool {
    let mut cursor = root.walk();
    loop {
        if f(cursor.node()) {
            return true;
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return false;
            }
        }
    }
}

fn first_node<'t>(root: Node<'t>, kind: &str) -> Option<Node<'t>> {
    let mut found = None;
    any_node(root, |n| {
        if n.kind() == kind {
            found = Some(n);
            true
        } else {
            false
        }
    });
    found
}

fn passes_guard(code: &str, root: Node, statements: &[Node], lang: SnippetLang) -> bool {
    let has_kind = |kinds: &[&str]| any_node(root, |n| kinds.contains(&n.kind()));
    match lang {
        SnippetLang::Curl => first_node(root, "command_name")
            .and_then(|n| n.utf8_text(code.as_bytes()).ok())
            .is_some_and(|name| name == "curl"),
        SnippetLang::Go => statements
            .first()
            .is_some_and(|n| n.kind() == "package_clause"),
        SnippetLang::Ruby => any_node(root, |n| match n.kind() {
            "assignment" | "scope_resolution" | "do_block" | "block" => true,
            "call" => n.child_by_field_name("receiver").is_some(),
            _ => false,
        }),
        SnippetLang::Java => has_kind(&["method_invocation", "object_creation_expression"]),
        SnippetLang::JavaScript | SnippetLang::Node => {
            has_kind(&["call_expression", "new_expression"])
        }
        SnippetLang::Swift => has_kind(&["call_expression", "constructor_expression"]),
        SnippetLang::Libcurl => has_kind(&["call_expression"]),
        SnippetLang::Php => true,
        SnippetLang::Python => true,
    }
}
