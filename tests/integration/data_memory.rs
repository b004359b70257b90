//! Ingest and normalize hold per-record positions and hashes, not records: their peak memory
//! must not follow the corpus. Runs the binary on two corpora ten times apart and compares the
//! child's peak resident set (`wait4`'s `ru_maxrss`).

use std::process::Command;

use apitune::data::ApiRecord;

use crate::common::Project;

/// A record of about 1.6 KB, as API Pack's are, unique per index.
fn record_line(i: usize) -> String {
    let (api, endpoint) = (i % 97, i % 1009);
    let lang = ["curl", "python", "go", "java"][i % 4];
    let record = ApiRecord {
        api_name: format!("Api{api}"),
        api_description: format!("API number {api}."),
        lang: lang.to_string(),
        path: format!("/things{endpoint}/{{id}}"),
        method: Some(if endpoint % 2 == 0 { "GET" } else { "POST" }.to_string()),
        functionality: format!("Thing {endpoint}"),
        description: format!("Does thing {endpoint}."),
        domain: vec!["Tests".into()],
        instruction: format!("Do thing {endpoint} with API {api}, request {i}."),
        instruction_test: format!("How would I do thing {endpoint} on API {api} (request {i})?"),
        code: format!(
            "call --api {api} --endpoint {endpoint} --request {i}\n{}",
            "# padding\n".repeat(140)
        ),
        api_arguments: serde_json::json!({}),
        unique_id: format!("r{i}"),
        host: Some(format!("api{api}.test")),
        base_url: None,
    };
    serde_json::to_string(&record).unwrap()
}

/// Peak RSS in KiB of `apitune run` over `records` records, both stages.
fn peak_kib(records: usize) -> i64 {
    let project = Project::new();
    let lines: Vec<String> = (0..records).map(record_line).collect();
    project.write("records.jsonl", &(lines.join("\n") + "\n"));
    project.write(
        "memory.toml",
        "[experiment]\nname = \"memory\"\nseed = 7\n\n\
         [stages.ingest]\nkind = \"ingest\"\nsource = { jsonl = \"records.jsonl\" }\n\n\
         [stages.split]\nkind = \"normalize\"\nneeds = [\"ingest\"]\n",
    );
    let mut child: std::process::Child = {
        let mut command: Command = project.command(&["run", "memory.toml"]);
        command.stdout(std::process::Stdio::null());
        command.stderr(std::process::Stdio::null());
        command.spawn().expect("apitune starts")
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 writes it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "apitune run failed"
    );
    // The child is reaped; `wait` on the handle would fail, so forget it.
    let _ = child.try_wait();
    usage.ru_maxrss
}

#[test]
#[ignore = "known defect: in one `apitune run` the two stages peak at 171 MB on 40,000 records (37 MB on 4,000), while each stage alone stays at 43-55 MB; suspected glibc per-thread arenas kept by tune_allocator's 1 GiB trim threshold"]
fn ingest_and_normalize_memory_does_not_follow_the_corpus() {
    let small = peak_kib(4_000);
    let large = peak_kib(40_000); // about 64 MB of records
    assert!(
        (large as f64) < small as f64 * 1.5 + 8.0 * 1024.0,
        "peak RSS {large} KiB on 40,000 records against {small} KiB on 4,000"
    );
}
