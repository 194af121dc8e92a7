//! Secrets at rest: nothing readable in the database, ciphertexts bound to their row, and a
//! server that refuses to start rather than store or read with the wrong key.

use std::os::unix::fs::PermissionsExt;

use connector_hub::app::Server;
use reqwest::StatusCode;
use serde_json::json;

use connector_hub::config::ServeConfig;

use crate::harness::{Backend, TestApp, id_of, on_both_backends, test_master_key};

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn the_database_holds_no_plaintext_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let planted = [
        "PLANTED-alpha-7c1e",
        "PLANTED-bravo-93fd",
        "PLANTED-charlie-0b2a",
    ];
    app.create_secret(&app.admin, "one", false, json!({"password": planted[0]}))
        .await;
    let second = app
        .create_secret(&app.admin, "two", true, json!({"token": planted[1]}))
        .await;
    app.put(
        &format!("/api/v1/secrets/{}", id_of(&second)),
        &app.admin,
        json!({"values": {"token": planted[2]}}),
    )
    .await
    .ok();
    // Checkpointing is not needed: the WAL file is read too.
    let raw = app.db.raw_contents().await;
    assert!(!raw.is_empty());
    for value in planted
        .iter()
        .copied()
        .chain([crate::harness::ADMIN_PASSWORD])
    {
        assert!(
            !contains(&raw, value.as_bytes()),
            "{value} found in the database"
        );
        assert!(
            !contains(&raw, hex(value).as_bytes()),
            "{value} found hex-encoded in the database"
        );
    }
    // The names and owners are not secret and are stored as they are.
    assert!(contains(&raw, b"two"));
    app.stop().await;
}

async fn a_ciphertext_moved_to_another_row_or_workspace_does_not_decrypt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app
        .create_secret(&app.admin, "first", false, json!({"k": "first-value"}))
        .await;
    let second = app
        .create_secret(&app.admin, "second", false, json!({"k": "second-value"}))
        .await;
    let (workspace, second_ciphertext) = app.db.secret_ciphertext(id_of(&second)).await;

    app.db
        .tamper_secret(id_of(&first), workspace, &second_ciphertext)
        .await;
    let moved = app
        .get(&format!("/api/v1/secrets/{}", id_of(&first)), &app.admin)
        .await;
    assert_eq!(moved.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(moved.error().0, "RuntimeError");
    assert!(
        moved.error().1.contains("does not belong to this record"),
        "{}",
        moved.body
    );
    assert!(!moved.body.to_string().contains("second-value"));

    // The second secret, moved whole into another tenant, does not decrypt there either.
    let other = app.create_workspace("other").await;
    app.add_member("other", "default", "admin").await;
    app.db
        .tamper_secret(id_of(&second), id_of(&other), &second_ciphertext)
        .await;
    let reply = app
        .get(
            &format!(
                "/api/v1/secrets/{}?project_name_or_id=other",
                id_of(&second)
            ),
            &app.admin,
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!reply.body.to_string().contains("second-value"));
    app.stop().await;
}

async fn a_flipped_byte_is_detected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_secret(&app.admin, "s", false, json!({"k": "value"}))
        .await;
    let (workspace, mut ciphertext) = app.db.secret_ciphertext(id_of(&secret)).await;
    let middle = ciphertext.len() / 2;
    ciphertext[middle] ^= 0x80;
    app.db
        .tamper_secret(id_of(&secret), workspace, &ciphertext)
        .await;
    let reply = app
        .get(&format!("/api/v1/secrets/{}", id_of(&secret)), &app.admin)
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.error().1.contains("corrupt"));
    app.stop().await;
}

async fn a_wrong_master_key_stops_start_up_with_a_clear_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_secret(&app.admin, "s", false, json!({"k": "value"}))
        .await;
    let mut config = app.config.clone();
    config.storage.encryption_key = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    ));
    let error = Server::build(config)
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(error.to_string().contains("does not match"), "{error}");

    let mut short = app.config.clone();
    short.storage.encryption_key = Some("c2hvcnQ=".into());
    let error = Server::build(short)
        .await
        .err()
        .expect("a short key is refused");
    assert!(error.to_string().contains("32 bytes"), "{error}");
    app.stop().await;
}

async fn postgres_needs_a_key_and_sqlite_makes_a_private_key_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut keyless = app.config.clone();
    keyless.storage.encryption_key = None;
    match backend {
        Backend::Postgres => {
            let error = Server::build(keyless)
                .await
                .err()
                .expect("PostgreSQL without a key is refused");
            assert!(
                error
                    .to_string()
                    .contains("head -c 32 /dev/urandom | base64"),
                "{error}"
            );
        }
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            keyless.storage.data_dir = dir.path().to_owned();
            let server = Server::build(keyless.clone())
                .await
                .expect("the embedded default makes its key");
            drop(server);
            let key_file = dir.path().join("master.key");
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let first = std::fs::read(&key_file).unwrap();
            Server::build(keyless)
                .await
                .expect("restarts with the same key file");
            assert_eq!(
                std::fs::read(&key_file).unwrap(),
                first,
                "the key is not replaced"
            );
        }
    }
    app.stop().await;
}

/// The master key replaced without downtime, as the README describes, on two processes
/// sharing one database: each restarts in turn with the new key and the old one as previous,
/// `keys rotate-master` re-wraps the data keys, then the previous key goes. Every secret stays
/// readable by every process throughout, and the old key alone no longer opens the database.
async fn the_master_key_is_replaced_during_a_rolling_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = app.spawn_peer(|_| {}).await;
    let keys = tempfile::tempdir().unwrap();
    let old_key = keys.path().join("old.key");
    let new_key = keys.path().join("new.key");
    std::fs::write(&old_key, test_master_key()).unwrap();
    let fresh = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
    std::fs::write(&new_key, &fresh).unwrap();
    let (old, new) = (old_key.clone(), new_key.clone());
    let rolled = move |config: &mut ServeConfig| {
        config.storage.encryption_key = None;
        config.storage.encryption_key_file = Some(new.clone());
        config.storage.previous_encryption_key_file = Some(old.clone());
    };
    let mut written = Vec::new();
    let mut write = async |app: &TestApp, value: &str| {
        let name = format!("s{}", written.len());
        let created = app
            .create_secret(&app.admin, &name, false, json!({"v": value}))
            .await;
        written.push((id_of(&created), value.to_owned()));
        written.clone()
    };
    let reads_all = async |app: &TestApp, written: &[(uuid::Uuid, String)]| {
        for (id, value) in written {
            let read = app
                .get(&format!("/api/v1/secrets/{id}"), &app.admin)
                .await
                .ok();
            assert_eq!(read["body"]["values"]["v"], json!(value), "{read}");
        }
    };
    write(&app, "before").await;

    // The peer restarts first; each process reads what the other writes.
    let peer = peer.restart_with(rolled.clone()).await;
    let all = write(&peer, "written by the new key's process").await;
    reads_all(&app, &all).await;
    let all = write(&app, "written by the old key's process").await;
    reads_all(&peer, &all).await;

    // The data keys move to the new master key, by the command line tool.
    let mut command = tokio::process::Command::new(crate::process::binary());
    command
        .args(["keys", "rotate-master", "--new-key-file"])
        .arg(&new_key)
        .env_clear()
        .env("CONNECTOR_HUB_DATA_DIR", &app.db.data_dir)
        .env("CONNECTOR_HUB_ENCRYPTION_KEY_FILE", &new_key)
        .env("CONNECTOR_HUB_PREVIOUS_ENCRYPTION_KEY_FILE", &old_key);
    if let Some(url) = &app.db.url {
        command.env("DATABASE_URL", url);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("rotate-master finishes within a minute")
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        report["rewrapped_data_keys"].as_u64().unwrap() >= 1,
        "{report}"
    );

    // The process still on the old key restarts too; then both drop the previous key.
    let app = app.restart_with(rolled.clone()).await;
    let all = write(&app, "after the rotation").await;
    reads_all(&peer, &all).await;
    let only_new = |config: &mut ServeConfig| config.storage.previous_encryption_key_file = None;
    let peer = peer.restart_with(only_new).await;
    let app = app.restart_with(only_new).await;
    reads_all(&app, &all).await;
    reads_all(&peer, &all).await;

    // The old key alone opens nothing now.
    let mut stale = app.config.clone();
    stale.storage.encryption_key_file = Some(old_key);
    let error = Server::build(stale)
        .await
        .err()
        .expect("the old key is refused");
    assert!(error.to_string().contains("does not match"), "{error}");
    peer.stop().await;
    app.stop().await;
}

on_both_backends!(
    the_database_holds_no_plaintext_secret,
    a_ciphertext_moved_to_another_row_or_workspace_does_not_decrypt,
    a_flipped_byte_is_detected,
    a_wrong_master_key_stops_start_up_with_a_clear_error,
    postgres_needs_a_key_and_sqlite_makes_a_private_key_file,
    the_master_key_is_replaced_during_a_rolling_restart,
);
