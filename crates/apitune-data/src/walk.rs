//! Finding the files a source pattern names: directories are walked recursively and globs are
//! expanded here (not by the `glob` crate, whose `**` follows every directory link).
//!
//! Symbolic links met during a walk are skipped and reported unless `follow_links` is set. When it
//! is, each real directory is walked once (by canonical path, so link loops end) and a link whose
//! target lies outside the directory the pattern names (its canonical root) is skipped and
//! reported. What the user names explicitly is always read: the literal directory or file of a
//! pattern, and a file a glob matches (even when that match is a link to a file).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::FileType;
use std::path::{Component, Path, PathBuf};

use super::error::DataError;

/// Why a walk passed over a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A symbolic link, not followed because `follow_links` is off.
    SymbolicLink,
    /// A symbolic link whose target lies outside the directory the pattern names.
    OutsideSource,
    /// A symbolic link to nothing (or one the system cannot resolve).
    BrokenLink,
}

impl SkipReason {
    /// Stable snake_case name used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SymbolicLink => "symbolic_link",
            Self::OutsideSource => "outside_source",
            Self::BrokenLink => "broken_link",
        }
    }
}

/// A path a walk did not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPath {
    pub path: PathBuf,
    pub reason: SkipReason,
}

impl SkippedPath {
    /// One line for a warning; the path is shown relative to `base_dir`.
    pub fn message(&self, base_dir: &Path) -> String {
        let shown = display_path(&self.path, base_dir);
        match self.reason {
            SkipReason::SymbolicLink => format!(
                "skipped symbolic link `{shown}` (set `follow_links = true` on the ingest stage to follow links)"
            ),
            SkipReason::OutsideSource => format!(
                "skipped symbolic link `{shown}`: it points outside the source directory (name its target in `source` to read it)"
            ),
            SkipReason::BrokenLink => {
                format!(
                    "skipped symbolic link `{shown}`: its target does not exist or cannot be resolved"
                )
            }
        }
    }
}

/// `path` relative to `base_dir` when under it, with `/` separators.
pub(crate) fn display_path(path: &Path, base_dir: &Path) -> String {
    path.strip_prefix(base_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// What a directory entry is, after following it when it is a link the walk may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Other,
}

impl Kind {
    fn of(file_type: FileType) -> Self {
        if file_type.is_dir() {
            Self::Dir
        } else if file_type.is_file() {
            Self::File
        } else {
            Self::Other
        }
    }
}

/// A path found by a walk: as reached (links kept, for ids and messages) and canonical.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub canonical: PathBuf,
    pub kind: Kind,
}

/// One path component of a glob after its literal root.
enum Step {
    /// `**`: any number of directories (consecutive ones collapsed into one).
    AnyDepth,
    Name(glob::Pattern),
}

/// Stands for "walking every file below" in the visited set (glob steps use their index).
const WALK: usize = usize::MAX;

/// One pattern's walk: its policy, the canonical root links must stay under, and what it skipped.
pub(crate) struct Walker<'a> {
    extensions: &'a [&'a str],
    follow_links: bool,
    root: PathBuf,
    /// (canonical directory, glob step or [`WALK`]) already visited: each real directory once.
    visited: BTreeSet<(PathBuf, usize)>,
    pub skipped: Vec<SkippedPath>,
}

impl<'a> Walker<'a> {
    /// A walker for files with `extensions` whose links must stay under `root` (the directory the
    /// pattern names, which must exist).
    pub fn new(
        extensions: &'a [&'a str],
        follow_links: bool,
        root: &Path,
    ) -> Result<Self, DataError> {
        let root = canonical(root)?;
        Ok(Self {
            extensions,
            follow_links,
            root,
            visited: BTreeSet::new(),
            skipped: Vec::new(),
        })
    }

    /// The canonical root links must stay under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every file below `dir` with one of the extensions, in sorted order; dot-files are left out.
    pub fn walk_directory(
        &mut self,
        dir: &Path,
        dir_canonical: &Path,
        out: &mut Vec<Found>,
    ) -> Result<(), DataError> {
        if !self.visited.insert((dir_canonical.to_path_buf(), WALK)) {
            return Ok(());
        }
        for (name, file_type) in list_directory(dir)? {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            let worth_a_warning = self.wanted(&path);
            let Some(found) =
                self.resolve(path, dir_canonical.join(&name), file_type, worth_a_warning)
            else {
                continue;
            };
            match found.kind {
                Kind::Dir => self.walk_directory(&found.path, &found.canonical, out)?,
                Kind::File if self.wanted(&found.path) => out.push(found),
                _ => {}
            }
        }
        Ok(())
    }

    fn wanted(&self, path: &Path) -> bool {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| self.extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
    }

    /// The entry at `path` (canonically `real` unless it is a link), following a link when the
    /// policy allows; `None` when it does not, noted in `skipped` if the link leads to a directory
    /// or `file_link_matters`.
    fn resolve(
        &mut self,
        path: PathBuf,
        real: PathBuf,
        file_type: FileType,
        file_link_matters: bool,
    ) -> Option<Found> {
        if !file_type.is_symlink() {
            return Some(Found {
                path,
                canonical: real,
                kind: Kind::of(file_type),
            });
        }
        let target =
            std::fs::canonicalize(&path).and_then(|t| std::fs::metadata(&t).map(|m| (t, m)));
        let skip = |reason| {
            Some(SkippedPath {
                path: path.clone(),
                reason,
            })
        };
        let skipped = match &target {
            Err(_) if !file_link_matters => None,
            Err(_) => skip(SkipReason::BrokenLink),
            Ok((_, metadata)) if !metadata.is_dir() && !file_link_matters => None,
            Ok(_) if !self.follow_links => skip(SkipReason::SymbolicLink),
            Ok((canonical, _)) if !canonical.starts_with(&self.root) => {
                skip(SkipReason::OutsideSource)
            }
            Ok((canonical, metadata)) => {
                return Some(Found {
                    path,
                    canonical: canonical.clone(),
                    kind: Kind::of(metadata.file_type()),
                });
            }
        };
        self.skipped.extend(skipped);
        None
    }

    /// A walker for glob `pattern` (relative to `base_dir`) and its matches: files, and directories
    /// for the caller to walk. Also returns the literal root the matches' ids are relative to.
    pub fn expand_glob(
        extensions: &'a [&'a str],
        follow_links: bool,
        base_dir: &Path,
        pattern: &str,
    ) -> Result<(Self, PathBuf, Vec<Found>), DataError> {
        let bad = |message: String| DataError::BadPattern {
            pattern: pattern.to_string(),
            message,
        };
        // Reject what the glob crate rejects (`a**`, an unclosed `[`), with its message.
        glob::Pattern::new(pattern).map_err(|e| bad(e.to_string()))?;
        let components: Vec<Component> = Path::new(pattern).components().collect();
        let literal = components
            .iter()
            .take_while(|c| !has_glob_chars(&c.as_os_str().to_string_lossy()))
            .count();
        let root = base_dir.join(components[..literal].iter().collect::<PathBuf>());
        let mut steps = Vec::new();
        for component in &components[literal..] {
            match component {
                Component::CurDir => {}
                Component::Normal(name) if name.to_str() == Some("**") => {
                    if !matches!(steps.last(), Some(Step::AnyDepth)) {
                        steps.push(Step::AnyDepth);
                    }
                }
                Component::Normal(name) => {
                    let pattern = glob::Pattern::new(&name.to_string_lossy())
                        .map_err(|e| bad(e.to_string()))?;
                    steps.push(Step::Name(pattern));
                }
                _ => {
                    return Err(bad(
                        "`..` after a wildcard is not supported; put it before the first wildcard"
                            .into(),
                    ));
                }
            }
        }
        let mut found = Vec::new();
        let mut walker = Self {
            extensions,
            follow_links,
            root: root.clone(),
            visited: BTreeSet::new(),
            skipped: Vec::new(),
        };
        if root.is_dir() {
            walker.root = canonical(&root)?;
            let root_canonical = walker.root.clone();
            walker.expand(&root, &root_canonical, &steps, 0, &mut found)?;
        }
        Ok((walker, root, found))
    }

    /// Matches of `steps[at..]` below `dir`, depth first in sorted order as the glob crate yields
    /// them: an entry, then what lies below it.
    fn expand(
        &mut self,
        dir: &Path,
        dir_canonical: &Path,
        steps: &[Step],
        at: usize,
        out: &mut Vec<Found>,
    ) -> Result<(), DataError> {
        if !self.visited.insert((dir_canonical.to_path_buf(), at)) {
            return Ok(());
        }
        let any_depth = matches!(steps[at], Step::AnyDepth);
        // `**` matches no directory (the next step applies here) or one more (recurse below).
        let matching = if any_depth && at + 1 < steps.len() {
            at + 1
        } else {
            at
        };
        let is_final = matching + 1 == steps.len();
        for (name, file_type) in list_directory(dir)? {
            let Some(name) = name.to_str() else { continue }; // as the glob crate: UTF-8 names only
            let matches = match &steps[matching] {
                Step::AnyDepth => true,
                Step::Name(pattern) => pattern.matches(name),
            };
            if !matches && !any_depth {
                continue;
            }
            let Some(found) = self.resolve_match(
                dir.join(name),
                dir_canonical.join(name),
                file_type,
                matches && is_final,
            ) else {
                continue;
            };
            let is_dir = found.kind == Kind::Dir;
            // A trailing `**` matches directories only (for the caller to walk), as in the glob crate.
            let file_matches =
                found.kind == Kind::File && !matches!(steps[matching], Step::AnyDepth);
            if matches && is_final && (is_dir || file_matches) {
                out.push(found.clone());
            } else if matches && !is_final && is_dir {
                self.expand(&found.path, &found.canonical, steps, matching + 1, out)?;
            }
            if any_depth && is_dir {
                self.expand(&found.path, &found.canonical, steps, at, out)?;
            }
        }
        Ok(())
    }

    /// Like [`Self::resolve`], except that a final match linking to a file is read: the user's
    /// pattern named it. Links to directories follow the walk's policy.
    fn resolve_match(
        &mut self,
        path: PathBuf,
        real: PathBuf,
        file_type: FileType,
        is_final: bool,
    ) -> Option<Found> {
        if is_final && file_type.is_symlink() {
            let target =
                std::fs::canonicalize(&path).and_then(|t| std::fs::metadata(&t).map(|m| (t, m)));
            if let Ok((canonical, metadata)) = target
                && metadata.is_file()
            {
                return Some(Found {
                    path,
                    canonical,
                    kind: Kind::File,
                });
            }
        }
        self.resolve(path, real, file_type, is_final)
    }
}

pub(crate) fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The canonical form of a path the user named.
pub(crate) fn canonical(path: &Path) -> Result<PathBuf, DataError> {
    std::fs::canonicalize(path).map_err(|e| DataError::io(path, "resolving path", e))
}

/// The entries of `dir` (name, and type without following links), sorted by name.
fn list_directory(dir: &Path) -> Result<Vec<(OsString, FileType)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "listing directory", e))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "listing directory", e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| DataError::io(entry.path(), "reading file type", e))?;
        listed.push((entry.file_name(), file_type));
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(listed)
}
