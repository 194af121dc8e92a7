use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp, on_both_backends};

async fn admins_manage_users_and_members_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let member = app.create_user("mia", "default", "member").await;
    // Workspace admins are not server admins either.
    let ws_admin = app.create_user("wanda", "default", "admin").await;
    for token in [&member, &ws_admin] {
        let attempts = [
            app.post(
                "/api/v1/users",
                token,
                json!({"name": "x", "password": "long enough"}),
            )
            .await,
            app.get("/api/v1/users", token).await,
            app.put("/api/v1/users/mia", token, json!({"is_admin": true}))
                .await,
            app.delete("/api/v1/users/mia", token).await,
            app.post("/api/v1/workspaces", token, json!({"name": "new"}))
                .await,
            app.put(
                "/api/v1/workspaces/default/members/mia",
                token,
                json!({"role": "admin"}),
            )
            .await,
            app.post("/api/v1/service_accounts", token, json!({"name": "bot"}))
                .await,
            app.get("/api/v1/keys", token).await,
            app.post("/api/v1/keys/rotate", token, json!({})).await,
            app.post("/api/v1/secrets_operations/backup", token, json!({}))
                .await,
        ];
        for reply in attempts {
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
            assert_eq!(reply.error().0, "IllegalOperationError");
        }
    }
    let users = app.get("/api/v1/users?sort_by=name", &app.admin).await.ok();
    let names: Vec<_> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "mia", "wanda"]);
    app.stop().await;
}

async fn users_read_themselves_but_no_one_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mia = app.create_user("mia", "default", "member").await;
    app.create_user("max", "default", "member").await;
    assert_eq!(app.get("/api/v1/users/mia", &mia).await.ok()["name"], "mia");
    let other = app.get("/api/v1/users/max", &mia).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.error().0, "KeyError");
    assert_eq!(
        app.get("/api/v1/users/max", &app.admin).await.ok()["name"],
        "max"
    );
    app.stop().await;
}

async fn deactivated_or_deleted_users_lose_access_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mia = app.create_user("mia", "default", "member").await;
    let max = app.create_user("max", "default", "member").await;
    app.put("/api/v1/users/mia", &app.admin, json!({"active": false}))
        .await
        .ok();
    assert_eq!(
        app.get("/api/v1/current-user", &mia).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.try_login("mia", "mia password").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.delete("/api/v1/users/max", &app.admin).await.ok();
    assert_eq!(
        app.get("/api/v1/current-user", &max).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/users/max", &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn user_names_are_unique_and_admins_cannot_lock_themselves_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("mia", "default", "member").await;
    let again = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"name": "mia", "password": "long enough"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error().0, "EntityExistsError");
    let short = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"name": "x", "password": "short"}),
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.error().1.contains("at least 8"));
    assert_eq!(
        app.delete("/api/v1/users/default", &app.admin).await.status,
        StatusCode::FORBIDDEN
    );
    let demote = app
        .put(
            "/api/v1/users/default",
            &app.admin,
            json!({"is_admin": false}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

on_both_backends!(
    admins_manage_users_and_members_are_refused,
    users_read_themselves_but_no_one_else,
    deactivated_or_deleted_users_lose_access_at_once,
    user_names_are_unique_and_admins_cannot_lock_themselves_out,
);
