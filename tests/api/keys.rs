//! Key rotation without downtime: through the HTTP API, the command line and between server
//! processes sharing one database.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Backend, TestApp, id_of, on_both_backends, test_master_key};

fn active_key(status: &Value) -> Uuid {
    let active: Vec<_> = status
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "exactly one active key: {status}");
    active[0]["id"].as_str().unwrap().parse().unwrap()
}

fn values_under_other_keys(status: &Value, active: Uuid) -> i64 {
    status
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["id"].as_str().unwrap().parse::<Uuid>().unwrap() != active)
        .map(|k| k["values"].as_i64().unwrap())
        .sum()
}

async fn rotate_and_rewrap_under_sixteen_concurrent_writers_lose_nothing(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let before = active_key(&app.get("/api/v1/keys", &app.admin).await.ok());
    const WRITERS: usize = 16;
    const ROUNDS: usize = 6;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            let mut expected = HashMap::new();
            for round in 0..ROUNDS {
                let name = format!("w{writer}-s{}", round % 3);
                let value = format!("writer {writer} round {round}");
                if round < 3 {
                    let created = app
                        .create_secret(&app.admin, &name, false, json!({ "v": value }))
                        .await;
                    expected.insert(id_of(&created), value);
                } else {
                    let id = *expected
                        .iter()
                        .find(|(_, v)| v.ends_with(&format!("round {}", round - 3)))
                        .unwrap()
                        .0;
                    app.put(
                        &format!("/api/v1/secrets/{id}"),
                        &app.admin,
                        json!({ "values": { "v": value } }),
                    )
                    .await
                    .ok();
                    expected.insert(id, value);
                }
            }
            expected
        }));
    }
    let rotated = app
        .post("/api/v1/keys/rotate", &app.admin, json!({}))
        .await
        .ok();
    let after = active_key(&rotated);
    assert_ne!(before, after);
    let report = app
        .post("/api/v1/keys/rewrap?batch_size=7", &app.admin, json!({}))
        .await
        .ok();
    assert_eq!(report["active_key"], json!(after));

    let mut expected = HashMap::new();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    // Writes that encrypted just before the rotation may land after the first pass; rewrap
    // resumes and converges.
    let report = app
        .post("/api/v1/keys/rewrap", &app.admin, json!({}))
        .await
        .ok();
    assert_eq!(report["remaining"], 0, "{report}");

    let status = app.get("/api/v1/keys", &app.admin).await.ok();
    assert_eq!(active_key(&status), after);
    assert_eq!(values_under_other_keys(&status, after), 0);
    // Every secret the writers made is there, and no other.
    let listed = app.get("/api/v1/secrets?size=1000", &app.admin).await.ok();
    let mut listed_ids: Vec<String> = (listed["items"].as_array().unwrap().iter())
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    let mut written: Vec<String> = expected.keys().map(ToString::to_string).collect();
    listed_ids.sort();
    written.sort();
    assert_eq!(listed_ids, written);
    for (id, value) in expected {
        let read = app
            .get(&format!("/api/v1/secrets/{id}"), &app.admin)
            .await
            .ok();
        assert_eq!(read["body"]["values"]["v"], value);
    }
    // The old key protects nothing now and can go; the active one cannot.
    let refused = app
        .delete(&format!("/api/v1/keys/{after}"), &app.admin)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    app.delete(&format!("/api/v1/keys/{before}"), &app.admin)
        .await
        .ok();
    Arc::into_inner(app).unwrap().stop().await;
}

async fn keys_in_use_cannot_be_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = active_key(&app.get("/api/v1/keys", &app.admin).await.ok());
    app.create_secret(&app.admin, "s", false, json!({"k": "v"}))
        .await;
    app.post("/api/v1/keys/rotate", &app.admin, json!({}))
        .await
        .ok();
    let refused = app.delete(&format!("/api/v1/keys/{old}"), &app.admin).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.error().1.contains("still in use"));
    let unknown = app
        .delete(&format!("/api/v1/keys/{}", Uuid::new_v4()), &app.admin)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.error().1.starts_with("there is no data key"));
    app.stop().await;
}

async fn a_key_is_rotated_automatically_at_its_encryption_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.storage.key_max_encryptions = 3).await;
    let first = active_key(&app.get("/api/v1/keys", &app.admin).await.ok());
    // The token signing key took one encryption at start-up.
    for i in 0..4 {
        app.create_secret(
            &app.admin,
            &format!("s{i}"),
            false,
            json!({"k": format!("v{i}")}),
        )
        .await;
    }
    let status = app.get("/api/v1/keys", &app.admin).await.ok();
    let keys = status.as_array().unwrap();
    assert!(keys.len() >= 2, "{status}");
    for key in keys {
        assert!(
            key["encryptions"].as_i64().unwrap() <= 3,
            "no key encrypts past its limit: {status}"
        );
    }
    assert_ne!(active_key(&status), first);
    for i in 0..4 {
        let listed = app
            .get(&format!("/api/v1/secrets?name=s{i}"), &app.admin)
            .await
            .ok();
        let id = id_of(&listed["items"][0]);
        assert_eq!(
            app.get(&format!("/api/v1/secrets/{id}"), &app.admin)
                .await
                .ok()["body"]["values"]["k"],
            format!("v{i}")
        );
    }
    app.stop().await;
}

async fn a_rotation_in_one_process_reaches_the_others(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    // The second process re-reads the active key on every encryption.
    let second = first
        .spawn_peer(|c| c.storage.key_refresh_seconds = 0)
        .await;
    let written_before = first
        .create_secret(&first.admin, "before", false, json!({"k": "old key"}))
        .await;
    let rotated = active_key(
        &first
            .post("/api/v1/keys/rotate", &first.admin, json!({}))
            .await
            .ok(),
    );
    // The first process wrote under the new key; the second has never loaded it and still reads.
    let written_after = first
        .create_secret(&first.admin, "after", false, json!({"k": "new key"}))
        .await;
    let read = second
        .get(
            &format!("/api/v1/secrets/{}", id_of(&written_after)),
            &second.admin,
        )
        .await
        .ok();
    assert_eq!(read["body"]["values"]["k"], "new key");
    let read = second
        .get(
            &format!("/api/v1/secrets/{}", id_of(&written_before)),
            &second.admin,
        )
        .await
        .ok();
    assert_eq!(read["body"]["values"]["k"], "old key");
    // The second process encrypts under the rotated key.
    let before = second.get("/api/v1/keys", &second.admin).await.ok();
    second
        .create_secret(&second.admin, "from-second", false, json!({"k": "v"}))
        .await;
    let after = second.get("/api/v1/keys", &second.admin).await.ok();
    let count = |status: &Value| {
        status
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == json!(rotated))
            .unwrap()["values"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(count(&after), count(&before) + 1);
    second.stop().await;
    first.stop().await;
}

fn cli(app: &TestApp, args: &[&str]) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connector-hub"));
    command.arg("keys").args(args);
    command.env("CONNECTOR_HUB_ENCRYPTION_KEY", test_master_key());
    command.env_remove("DATABASE_URL");
    command.env("CONNECTOR_HUB_DATA_DIR", &app.config.storage.data_dir);
    if let Some(url) = &app.config.storage.database_url {
        command.env("DATABASE_URL", url);
    }
    let output = command.output().expect("the binary runs");
    assert!(
        output.status.success(),
        "keys {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the command prints JSON")
}

async fn the_keys_command_rotates_rewraps_and_reports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_secret(&app.admin, "s", false, json!({"k": "v"}))
        .await;
    let before = active_key(&cli(&app, &["status"]));
    let rotated: Uuid = cli(&app, &["rotate"])["active_key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(before, rotated);
    let status = cli(&app, &["status"]);
    assert!(values_under_other_keys(&status, rotated) > 0);
    let report = cli(&app, &["rewrap", "--batch-size", "1"]);
    assert_eq!(report["remaining"], 0);
    let status = cli(&app, &["status"]);
    assert_eq!(values_under_other_keys(&status, rotated), 0);
    let removed = cli(&app, &["remove", &before.to_string()]);
    assert_eq!(removed["removed"], json!(before));
    // The running server picks up the new key for reading on demand.
    let read = app
        .get(&format!("/api/v1/secrets/{}", id_of(&secret)), &app.admin)
        .await
        .ok();
    assert_eq!(read["body"]["values"]["k"], "v");
    app.stop().await;
}

async fn the_master_key_is_rotated_without_touching_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_secret(&app.admin, "s", false, json!({"k": "survives"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let new_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
    let key_file = dir.path().join("new.key");
    std::fs::write(&key_file, &new_key).unwrap();
    let report = cli(
        &app,
        &[
            "rotate-master",
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    assert_eq!(report["rewrapped_data_keys"], 1);
    // The old key no longer opens the database.
    let error = connector_hub::app::Server::build(app.config.clone())
        .await
        .err()
        .expect("old key refused");
    assert!(error.to_string().contains("does not match"), "{error}");
    let app = app
        .restart_with(|c| c.storage.encryption_key = Some(new_key))
        .await;
    let read = app
        .get(&format!("/api/v1/secrets/{}", id_of(&secret)), &app.admin)
        .await
        .ok();
    assert_eq!(read["body"]["values"]["k"], "survives");
    app.stop().await;
}

on_both_backends!(
    rotate_and_rewrap_under_sixteen_concurrent_writers_lose_nothing,
    keys_in_use_cannot_be_removed,
    a_key_is_rotated_automatically_at_its_encryption_limit,
    a_rotation_in_one_process_reaches_the_others,
    the_keys_command_rotates_rewraps_and_reports,
    the_master_key_is_rotated_without_touching_values,
);
