//! Helpers for tests that drive the `apitune` binary in a temporary project directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apitune"));
        cmd.current_dir(self.dir.path())
            .arg("--cache")
            .arg(self.dir.path().join("cache"))
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().expect("apitune runs"))
    }

    /// The published cache directory holding `file` (exactly one must).
    pub fn artifact_with(&self, file: &str) -> PathBuf {
        let hits: Vec<PathBuf> = find_file(&self.path().join("cache"), file)
            .into_iter()
            .filter(|f| !f.to_string_lossy().contains("/work/"))
            .collect();
        assert_eq!(hits.len(), 1, "{file}: {hits:?}");
        hits[0].parent().unwrap().to_path_buf()
    }
}

/// Every file named `name` under `root`.
pub fn find_file(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find_file(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Status per arm name from `run --format json` or `plan --format json`.
pub fn statuses(json: &serde_json::Value) -> Vec<(String, String)> {
    json["arms"]
        .as_array()
        .expect("arms")
        .iter()
        .map(|a| {
            (
                a["arm"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What is staged in a cache's `tmp/`: everything but the writers' own (empty) session
/// directories and their lock files.
pub fn staged_in_tmp(cache_root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache_root.join("tmp")) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("s-") && name.ends_with(".lock") {
            continue;
        }
        if name.starts_with("s-") && entry.path().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap().file_name().to_string_lossy().into_owned();
                found.push(format!("{name}/{inner}"));
            }
            continue;
        }
        found.push(name);
    }
    found.sort();
    found
}
