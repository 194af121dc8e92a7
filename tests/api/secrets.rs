use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp, id_of, on_both_backends};

async fn secrets_round_trip_and_lists_carry_no_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create_secret(
            &app.admin,
            "db-creds",
            false,
            json!({"username": "admin", "password": "hunter2"}),
        )
        .await;
    assert_eq!(created["body"]["values"]["password"], "hunter2");
    assert_eq!(created["body"]["private"], false);
    let id = id_of(&created);
    let read = app
        .get(&format!("/api/v1/secrets/{id}"), &app.admin)
        .await
        .ok();
    assert_eq!(
        read["body"]["values"],
        json!({"username": "admin", "password": "hunter2"})
    );
    assert!(read["metadata"].is_object());
    let listed = app
        .get("/api/v1/secrets?name=db-creds&hydrate=true", &app.admin)
        .await
        .ok();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["body"]["values"], json!({}));
    assert!(!listed.to_string().contains("hunter2"));
    app.delete(&format!("/api/v1/secrets/{id}"), &app.admin)
        .await
        .ok();
    assert_eq!(
        app.get(&format!("/api/v1/secrets/{id}"), &app.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn private_secrets_exist_only_for_their_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_user("olga", "default", "member").await;
    let member = app.create_user("mo", "default", "member").await;
    let ws_admin = app.create_user("ada", "default", "admin").await;
    let private = app
        .create_secret(&owner, "mine", true, json!({"token": "olga-only"}))
        .await;
    let public = app
        .create_secret(&owner, "shared", false, json!({"token": "everyone"}))
        .await;
    let private_path = format!("/api/v1/secrets/{}", id_of(&private));
    let public_path = format!("/api/v1/secrets/{}", id_of(&public));

    for token in [&member, &ws_admin] {
        let reply = app.get(&private_path, token).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(!reply.body.to_string().contains("mine"));
        assert_eq!(
            app.put(&private_path, token, json!({"values": {}}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete(&private_path, token).await.status,
            StatusCode::NOT_FOUND
        );
        let names: Vec<_> = app.get("/api/v1/secrets", token).await.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["shared"]);
        assert_eq!(
            app.get(&public_path, token).await.ok()["body"]["values"]["token"],
            "everyone"
        );
    }
    assert_eq!(
        app.get(&private_path, &owner).await.ok()["body"]["values"]["token"],
        "olga-only"
    );

    // Public secrets: members read them, but only the owner or a workspace admin changes them.
    let denied = app
        .put(&public_path, &member, json!({"values": {"token": "mo"}}))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.error().0, "IllegalOperationError");
    assert_eq!(
        app.delete(&public_path, &member).await.status,
        StatusCode::FORBIDDEN
    );
    app.put(
        &public_path,
        &ws_admin,
        json!({"values": {"token": "rotated"}}),
    )
    .await
    .ok();
    assert_eq!(
        app.get(&public_path, &owner).await.ok()["body"]["values"]["token"],
        "rotated"
    );
    app.delete(&public_path, &ws_admin).await.ok();
    app.stop().await;
}

async fn names_are_unique_among_public_and_per_owner_among_private(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let olga = app.create_user("olga", "default", "member").await;
    let mo = app.create_user("mo", "default", "member").await;
    app.create_secret(&olga, "db", false, json!({})).await;
    let clash = app
        .post("/api/v1/secrets", &mo, json!({"name": "db", "values": {}}))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(
        clash.error(),
        (
            "EntityExistsError".into(),
            "Unable to create the requested secret with name 'db': Found another existing secret with the same name."
                .into()
        )
    );
    // Private names only clash with the same owner's private secrets.
    app.create_secret(&olga, "token", true, json!({})).await;
    app.create_secret(&mo, "token", true, json!({})).await;
    let again = app
        .post(
            "/api/v1/secrets",
            &olga,
            json!({"name": "token", "private": true, "values": {}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    app.stop().await;
}

async fn updates_replace_or_patch_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_secret(&app.admin, "s", false, json!({"a": "1", "b": "2"}))
        .await;
    let path = format!("/api/v1/secrets/{}", id_of(&secret));
    let patched = app
        .put(
            &format!("{path}?patch_values=true"),
            &app.admin,
            json!({"values": {"a": null, "c": "3"}}),
        )
        .await
        .ok();
    assert_eq!(patched["body"]["values"], json!({"b": "2", "c": "3"}));
    let replaced = app
        .put(
            &path,
            &app.admin,
            json!({"values": {"z": "26"}, "name": "renamed"}),
        )
        .await
        .ok();
    assert_eq!(replaced["body"]["values"], json!({"z": "26"}));
    let read = app.get(&path, &app.admin).await.ok();
    assert_eq!(read["name"], "renamed");
    assert_eq!(read["body"]["values"], json!({"z": "26"}));
    let made_private = app
        .put(&path, &app.admin, json!({"private": true}))
        .await
        .ok();
    assert_eq!(made_private["body"]["private"], true);
    assert_eq!(made_private["body"]["values"], json!({"z": "26"}));
    app.stop().await;
}

async fn value_limits_are_enforced_with_a_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
    let too_many = app
        .post(
            "/api/v1/secrets",
            &app.admin,
            json!({"name": "many", "values": many}),
        )
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert!(too_many.error().1.contains("at most 100 values"));
    let long = "x".repeat(70 * 1024);
    let too_long = app
        .post(
            "/api/v1/secrets",
            &app.admin,
            json!({"name": "long", "values": {"k": long}}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(too_long.error().1.contains("longer than"));
    assert_eq!(
        app.get("/api/v1/secrets", &app.admin).await.ok()["total"],
        0,
        "nothing half-written"
    );
    app.stop().await;
}

async fn backups_restore_deleted_secrets_without_exposing_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let kept = app
        .create_secret(&app.admin, "kept", false, json!({"k": "keep-me"}))
        .await;
    let lost = app
        .create_secret(&app.admin, "lost", true, json!({"k": "bring-me-back"}))
        .await;
    let backup = app
        .post("/api/v1/secrets_operations/backup", &app.admin, json!({}))
        .await
        .ok();
    let text = backup.to_string();
    assert!(!text.contains("keep-me") && !text.contains("bring-me-back"));
    app.delete(&format!("/api/v1/secrets/{}", id_of(&lost)), &app.admin)
        .await
        .ok();
    let report = app
        .post(
            "/api/v1/secrets_operations/restore",
            &app.admin,
            backup.clone(),
        )
        .await
        .ok();
    assert_eq!(report, json!({"restored": 1, "skipped": 1}));
    let back = app
        .get(&format!("/api/v1/secrets/{}", id_of(&lost)), &app.admin)
        .await
        .ok();
    assert_eq!(back["body"]["values"]["k"], "bring-me-back");
    assert_eq!(back["body"]["private"], true);
    assert_eq!(
        app.get(&format!("/api/v1/secrets/{}", id_of(&kept)), &app.admin)
            .await
            .ok()["body"]["values"]["k"],
        "keep-me"
    );

    // A backup whose ciphertext was altered is refused whole.
    let mut altered = backup;
    let ciphertext = altered["secrets"][0]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = base64_decode(&ciphertext);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    altered["secrets"][0]["ciphertext"] = json!(base64_encode(&bytes));
    let refused = app
        .post("/api/v1/secrets_operations/restore", &app.admin, altered)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.error().1.contains("cannot be restored"));
    app.stop().await;
}

/// A backup from a server with another master key cannot be read here. It is refused with
/// nothing stored: a data key wrapped by an unknown master key would stop the server from
/// starting again.
async fn backups_from_another_master_key_are_refused_whole(backend: Backend) {
    let source = TestApp::spawn(backend).await;
    source
        .create_secret(&source.admin, "elsewhere", false, json!({"k": "v"}))
        .await;
    let backup = source
        .post(
            "/api/v1/secrets_operations/backup",
            &source.admin,
            json!({}),
        )
        .await
        .ok();
    source.stop().await;

    let other_key = base64_encode(&[7u8; 32]);
    let app = TestApp::spawn_with(backend, |c| c.storage.encryption_key = Some(other_key)).await;
    let keys_before = app.db.row_count("data_keys").await;
    let refused = app
        .post("/api/v1/secrets_operations/restore", &app.admin, backup)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.error().1.contains("cannot be restored"));
    assert_eq!(app.db.row_count("data_keys").await, keys_before);
    assert_eq!(app.db.row_count("secrets").await, 0);
    let app = app.restart().await;
    app.create_secret(&app.admin, "after", false, json!({"k": "v"}))
        .await;
    app.stop().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

on_both_backends!(
    secrets_round_trip_and_lists_carry_no_values,
    private_secrets_exist_only_for_their_owner,
    names_are_unique_among_public_and_per_owner_among_private,
    updates_replace_or_patch_values,
    value_limits_are_enforced_with_a_400,
    backups_restore_deleted_secrets_without_exposing_values,
    backups_from_another_master_key_are_refused_whole,
);
