use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{ADMIN_PASSWORD, Backend, TestApp, on_both_backends};

async fn login_with_a_password_gives_a_bearer_token_for_that_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app.try_login("default", ADMIN_PASSWORD).await.ok();
    assert_eq!(reply["token_type"], "bearer");
    assert_eq!(reply["expires_in"], app.config.token_lifetime_seconds);
    let token = reply["access_token"].as_str().unwrap();
    let me = app
        .get("/api/v1/current-user?hydrate=True", token)
        .await
        .ok();
    assert_eq!(me["name"], "default");
    assert_eq!(me["body"]["is_admin"], true);
    assert!(me["body"]["default_project_id"].is_string());
    app.stop().await;
}

async fn wrong_passwords_and_unknown_users_get_the_same_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = app.try_login("default", "not the password").await;
    let unknown = app.try_login("nobody", "whatever it is").await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.error(),
            (
                "CredentialsNotValid".into(),
                "Authentication error: invalid username or password".into()
            )
        );
    }
    let missing = app
        .send(
            app.client
                .post(app.url("/api/v1/login"))
                .form(&[("password", "x")]),
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::UNAUTHORIZED,
        "a password without user name is an API key attempt"
    );
    let no_user = app
        .send(
            app.client
                .post(app.url("/api/v1/login"))
                .form(&[("grant_type", "password"), ("password", "x")]),
        )
        .await;
    assert_eq!(no_user.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_user.error().0, "ValueError");
    app.stop().await;
}

async fn failed_logins_are_limited_per_user_and_per_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.login_max_failures_per_user = 3;
        c.login_max_failures_per_address = 6;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.try_login("default", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked now, even with the right password.
    let locked = app.try_login("default", ADMIN_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(locked.error().0, "TooManyRequests");
    // Guessing across user names from one address runs into the address limit.
    for name in ["a", "b", "c"] {
        assert_eq!(
            app.try_login(name, "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.try_login("d", "guess").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}

async fn expired_and_forged_tokens_get_401_with_www_authenticate(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.token_lifetime_seconds = 600).await;
    let token = app.admin.clone();
    assert_eq!(
        app.get("/api/v1/current-user", &token).await.status,
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(601));
    let expired = app.get("/api/v1/current-user", &token).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.headers["www-authenticate"], "Bearer");
    assert_eq!(expired.error().0, "CredentialsNotValid");
    assert!(expired.error().1.contains("expired"));

    let mut forged = app.login("default", ADMIN_PASSWORD).await;
    forged.pop();
    forged.push('A');
    for token in [forged.as_str(), "not-a-token", ""] {
        let reply = app.get("/api/v1/current-user", token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        assert_eq!(reply.error().0, "CredentialsNotValid");
    }
    app.stop().await;
}

async fn service_accounts_log_in_with_api_keys_until_the_key_is_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post(
        "/api/v1/service_accounts",
        &app.admin,
        json!({"name": "ci-bot", "default_workspace": "default"}),
    )
    .await
    .ok();
    let key = app
        .post(
            "/api/v1/service_accounts/ci-bot/api_keys",
            &app.admin,
            json!({"name": "main"}),
        )
        .await
        .ok();
    let key_text = key["body"]["key"].as_str().unwrap().to_owned();
    assert!(key_text.starts_with("ZENKEY_"));
    let listed = app
        .get("/api/v1/service_accounts/ci-bot/api_keys", &app.admin)
        .await
        .ok();
    assert!(
        listed["items"][0]["body"].get("key").is_none(),
        "keys are shown only once"
    );

    let form = [
        ("grant_type", "zenml-api-key"),
        ("password", key_text.as_str()),
    ];
    let login = app
        .send(app.client.post(app.url("/api/v1/login")).form(&form))
        .await
        .ok();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/api/v1/current-user", &token).await.ok();
    assert_eq!(me["name"], "ci-bot");
    assert_eq!(me["body"]["is_service_account"], true);
    // A service account works in its workspace like any member.
    app.create_secret(&token, "bot-secret", false, json!({"k": "v"}))
        .await;

    let bad = [
        ("grant_type", "zenml-api-key"),
        ("password", "ZENKEY_bm90IGEga2V5"),
    ];
    assert_eq!(
        app.send(app.client.post(app.url("/api/v1/login")).form(&bad))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let key_id = key["id"].as_str().unwrap();
    app.delete(
        &format!("/api/v1/service_accounts/ci-bot/api_keys/{key_id}"),
        &app.admin,
    )
    .await
    .ok();
    let revoked = app.get("/api/v1/current-user", &token).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(app.client.post(app.url("/api/v1/login")).form(&form))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

async fn users_change_their_own_password_only_with_the_old_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_user("carol", "default", "member").await;
    let wrong = app
        .put(
            "/api/v1/current-user",
            &token,
            json!({"password": "brand new password", "old_password": "nope"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    app.put(
        "/api/v1/current-user",
        &token,
        json!({"password": "brand new password", "old_password": "carol password", "full_name": "Carol"}),
    )
    .await
    .ok();
    assert_eq!(
        app.try_login("carol", "carol password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.login("carol", "brand new password").await;
    assert_eq!(
        app.get("/api/v1/current-user", &fresh).await.ok()["body"]["full_name"],
        "Carol"
    );
    app.stop().await;
}

on_both_backends!(
    login_with_a_password_gives_a_bearer_token_for_that_user,
    wrong_passwords_and_unknown_users_get_the_same_401,
    failed_logins_are_limited_per_user_and_per_address,
    expired_and_forged_tokens_get_401_with_www_authenticate,
    service_accounts_log_in_with_api_keys_until_the_key_is_deleted,
    users_change_their_own_password_only_with_the_old_one,
);
