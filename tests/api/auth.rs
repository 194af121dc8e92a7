use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    let huge = app.try_login(&"n".repeat(100_000), "whatever it is").await;
    assert_eq!(huge.status, StatusCode::UNAUTHORIZED);
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

    // Change the first character of the signature: unlike the last one, it
    // carries six full bits, so any other character changes the signature.
    let genuine = app.login("default", ADMIN_PASSWORD).await;
    let signature_start = genuine.rfind('.').unwrap() + 1;
    let replacement = if genuine[signature_start..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let mut bad_signature = genuine.clone();
    bad_signature.replace_range(signature_start..=signature_start, replacement);
    // A payload naming another subject under the genuine signature.
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let other_subject = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    for token in [
        bad_signature.as_str(),
        other_subject.as_str(),
        "not-a-token",
        "",
    ] {
        let reply = app.get("/api/v1/current-user", token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        assert_eq!(reply.error().0, "CredentialsNotValid");
    }
    app.stop().await;
}

async fn service_accounts_log_in_with_api_keys_until_the_key_is_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.create_service_account("ci-bot", "default").await;
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
    // The list protocol holds here as on every list.
    app.post(
        "/api/v1/service_accounts/ci-bot/api_keys",
        &app.admin,
        json!({"name": "spare"}),
    )
    .await
    .ok();
    let keys = "/api/v1/service_accounts/ci-bot/api_keys";
    let second = app
        .get(&format!("{keys}?size=1&page=2"), &app.admin)
        .await
        .ok();
    assert_eq!(
        (second["total"].as_i64(), second["total_pages"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(second["items"][0]["name"], "spare");
    let named = app.get(&format!("{keys}?name=main"), &app.admin).await.ok();
    assert_eq!(named["total"], 1);
    for (bad, status, class) in [
        ("?page=3&size=1", StatusCode::BAD_REQUEST, "ValueError"),
        (
            "?colour=red",
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValueError",
        ),
    ] {
        let reply = app.get(&format!("{keys}{bad}"), &app.admin).await;
        assert_eq!(reply.status, status, "{bad}: {}", reply.body);
        assert_eq!(reply.error().0, class, "{bad}");
    }

    let login = app.try_login_with_api_key(&key_text).await.ok();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/api/v1/current-user", &token).await.ok();
    assert_eq!(me["name"], "ci-bot");
    assert_eq!(me["body"]["is_service_account"], true);
    // A service account works in its workspace like any member.
    app.create_secret(&token, "bot-secret", false, json!({"k": "v"}))
        .await;
    let connector = app
        .post(
            "/api/v1/service_connectors",
            &token,
            json!({"name": "bot-token", "connector_type": "azure", "auth_method": "access-token",
                   "expires_at": "2099-01-01T00:00:00Z", "configuration": {"token": "t"}}),
        )
        .await
        .ok();
    let connector = format!(
        "/api/v1/service_connectors/{}",
        connector["id"].as_str().unwrap()
    );
    let workspace_scoped = ["/api/v1/secrets", connector.as_str()];
    for path in workspace_scoped {
        app.get(path, &token).await.ok();
    }

    assert_eq!(
        app.try_login_with_api_key("ZENKEY_bm90IGEga2V5")
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
    for path in ["/api/v1/current-user"].into_iter().chain(workspace_scoped) {
        let revoked = app.get(path, &token).await;
        assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            revoked.error().1.contains("API key"),
            "{path}: {}",
            revoked.body
        );
    }
    assert_eq!(
        app.try_login_with_api_key(&key_text).await.status,
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

mod device_flow {
    use std::time::Duration;

    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use crate::harness::{Backend, TestApp, on_both_backends};

    /// The client that asks for device codes and polls for them: a code is good only for it.
    const CLIENT_ID: &str = "5a1d9c0e-0000-4000-8000-000000000001";

    async fn start(app: &TestApp) -> Value {
        let form = [("client_id", CLIENT_ID)];
        app.send(
            app.client
                .post(app.url("/api/v1/device_authorization"))
                .form(&form),
        )
        .await
        .ok()
    }

    async fn poll(app: &TestApp, device_code: &str) -> crate::harness::Reply {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", CLIENT_ID),
            ("device_code", device_code),
        ];
        app.send(app.client.post(app.url("/api/v1/login")).form(&form))
            .await
    }

    fn device_id(started: &Value) -> String {
        let uri = started["verification_uri_complete"].as_str().unwrap();
        uri.split("device_id=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    }

    async fn an_approved_device_gets_one_token_for_its_approver(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.create_user("alice", "default", "member").await;
        let started = start(&app).await;
        let code = started["device_code"].as_str().unwrap().to_owned();
        assert!(
            started["expires_in"].as_i64().unwrap() > 0
                && started["interval"].as_i64().unwrap() > 0
        );

        let pending = poll(&app, &code).await;
        assert_eq!(pending.status, StatusCode::BAD_REQUEST);
        assert_eq!(pending.body, json!({"error": "authorization_pending"}));

        let path = format!("/api/v1/devices/{}/verify", device_id(&started));
        let wrong = app.put(&path, &alice, json!({"user_code": "WRONG"})).await;
        assert_eq!(wrong.status, StatusCode::NOT_FOUND);
        let anonymous = app
            .put(&path, "", json!({"user_code": started["user_code"]}))
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        app.put(&path, &alice, json!({"user_code": started["user_code"]}))
            .await
            .ok();

        let granted = poll(&app, &code).await.ok();
        let token = granted["access_token"].as_str().unwrap();
        assert_eq!(
            app.get("/api/v1/current-user", token).await.ok()["name"],
            "alice"
        );
        let again = poll(&app, &code).await;
        assert_eq!(
            again.body,
            json!({"error": "invalid_grant"}),
            "a device code is good for one token"
        );
        let page = app
            .client
            .get(app.url("/devices/verify"))
            .send()
            .await
            .unwrap();
        assert!(page.text().await.unwrap().contains("/api/v1/devices/"));

        // The audit log has the approval, the device's login, and the reused code's refusal.
        app.audit.chain_now().await.unwrap();
        let logged = app
            .get(
                "/api/v1/audit_events?action=startswith:auth.&size=100",
                &app.admin,
            )
            .await
            .ok();
        let records = logged["items"].as_array().unwrap();
        let find = |action: &str| {
            records
                .iter()
                .find(|r| r["action"] == action && r["details"]["method"] == "device")
                .unwrap_or_else(|| panic!("no {action} by device in {logged}"))
        };
        assert_eq!(find("auth.login")["actor"]["name"], "alice");
        let refused = find("auth.login_failed");
        assert_eq!(refused["outcome"], "denied");
        assert_eq!(refused["actor"]["name"], format!("device:{CLIENT_ID}"));
        let approved = records
            .iter()
            .find(|r| r["action"] == "auth.device_authorized")
            .expect("the approval is recorded");
        assert_eq!(approved["actor"]["name"], "alice");
        app.stop().await;
    }

    async fn unapproved_device_codes_expire(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let started = start(&app).await;
        app.clock.advance(Duration::from_secs(301));
        let expired = poll(&app, started["device_code"].as_str().unwrap()).await;
        assert_eq!(expired.body, json!({"error": "expired_token"}));
        let path = format!("/api/v1/devices/{}/verify", device_id(&started));
        let late = app
            .put(
                &path,
                &app.admin,
                json!({"user_code": started["user_code"]}),
            )
            .await;
        assert_eq!(late.status, StatusCode::NOT_FOUND);
        assert_eq!(
            poll(&app, "made-up").await.body,
            json!({"error": "invalid_grant"})
        );
        app.stop().await;
    }

    /// A device token approved with an API key would outlive the key's deletion.
    async fn devices_are_not_approved_with_an_api_key(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let key = app.create_service_account("ci-bot", "default").await;
        let login = app
            .try_login_with_api_key(key["body"]["key"].as_str().unwrap())
            .await
            .ok();
        let bot = login["access_token"].as_str().unwrap();

        let started = start(&app).await;
        let path = format!("/api/v1/devices/{}/verify", device_id(&started));
        let refused = app
            .put(&path, bot, json!({"user_code": started["user_code"]}))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.error().1.contains("API key"));
        let pending = poll(&app, started["device_code"].as_str().unwrap()).await;
        assert_eq!(pending.body, json!({"error": "authorization_pending"}));
        app.stop().await;
    }

    on_both_backends!(
        an_approved_device_gets_one_token_for_its_approver,
        unapproved_device_codes_expire,
        devices_are_not_approved_with_an_api_key,
    );
}
