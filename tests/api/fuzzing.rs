//! A schema-driven fuzzer against the live server: schemathesis (from PyPI; `tests/run.sh`
//! installs it into `tests/.venv-fuzz`) generates requests for every operation of the OpenAPI
//! document, and the run fails on any 5xx, any response that does not match the document, and
//! any status or content type the document does not declare. `tests/run.sh` runs this module
//! on its own, with its output shown, so that CI prints how many cases it generated.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::json;

use crate::harness::{Backend, TestApp, id_of, on_both_backends};

/// Cases per operation and phase.
const MAX_EXAMPLES: u32 = 10;

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/.venv-fuzz/bin/schemathesis"
            ))
        });
    assert!(
        path.exists(),
        "schemathesis is not installed at {}: run tests/run.sh, which installs it into \
         tests/.venv-fuzz",
        path.display()
    );
    path
}

/// Records the fuzzer's requests can reach by id or name, so that it tests more than 404s.
async fn records(app: &TestApp) -> Vec<(&'static str, String)> {
    let token = &app.admin;
    app.create_workspace("fuzzed").await;
    app.create_user("fuzzed", "fuzzed", "member").await;
    let key = app.create_service_account("fuzz-bot", "fuzzed").await;
    let connector = app
        .post(
            "/api/v1/service_connectors",
            token,
            crate::components::azure_connector("fuzz-target", json!({})),
        )
        .await
        .ok();
    let component = app
        .post(
            "/api/v1/components",
            token,
            crate::components::artifact_store("fuzz-target", "az://data"),
        )
        .await
        .ok();
    let secret = app
        .create_secret(token, "fuzz-target", false, json!({"k": "v"}))
        .await;
    let stacks = app.get("/api/v1/stacks", token).await.ok();
    let flavors = app.get("/api/v1/flavors", token).await.ok();
    vec![
        ("workspace", "fuzzed".into()),
        ("user", "fuzzed".into()),
        ("account", "fuzz-bot".into()),
        ("key_id", key["id"].as_str().unwrap().into()),
        ("connector_id", id_of(&connector).to_string()),
        ("component_id", id_of(&component).to_string()),
        ("secret_id", id_of(&secret).to_string()),
        ("stack_id", id_of(&stacks["items"][0]).to_string()),
        ("flavor_id", id_of(&flavors["items"][0]).to_string()),
    ]
}

async fn a_schema_driven_fuzzer_finds_nothing_the_document_does_not_say(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("schemathesis.toml");
    let parameters: String = records(&app)
        .await
        .into_iter()
        .map(|(name, value)| format!("\"path.{name}\" = \"{value}\"\n"))
        .collect();
    std::fs::write(&config, format!("[parameters]\n{parameters}")).unwrap();
    let output = tokio::process::Command::new(schemathesis())
        .current_dir(directory.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &app.url("/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {}", app.admin)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .arg("--generation-deterministic")
        // One worker: with two threads, schemathesis 4.32.5's coverage phase now and then
        // crashed on its own shared caches (a KeyError inside it, before any report).
        .args(["--workers", "1", "--request-timeout", "30"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(900), output)
        .await
        .expect("schemathesis finishes within 15 minutes")
        .expect("schemathesis runs");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let generated = printed
        .split("Test cases:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("schemathesis reported no case count:\n{printed}"));
    println!(
        "schemathesis ({backend:?}): {generated} cases over every operation, at most \
         {MAX_EXAMPLES} per operation and phase"
    );
    assert!(
        output.status.success(),
        "schemathesis found responses the document does not allow:\n{printed}"
    );
    assert!(generated > 1000, "too few cases: {generated}\n{printed}");
    app.stop().await;
}

on_both_backends!(a_schema_driven_fuzzer_finds_nothing_the_document_does_not_say);
