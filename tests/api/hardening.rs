//! What an outside probe found, each fixed and held by a test: bounded filters, slow headers
//! cut off, connections capped, no lockout by failing on purpose, sessions that end when the
//! account changes, device logins bound to their client, truthful responses, input limits and
//! indexed foreign keys.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::components::refused;
use crate::harness::{ADMIN_PASSWORD, Backend, Reply, TestApp, id_of, on_both_backends};

async fn filters_are_bounded_with_a_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("name=a{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    for list in [
        "service_connectors",
        "secrets",
        "users",
        "workspaces",
        "components",
        "stacks",
        "flavors",
    ] {
        let reply = app
            .get(&format!("/api/v1/{list}?{}", many(500)), &app.admin)
            .await;
        refused(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValueError",
            &["at most 100 filter values, not 500"],
        );
        // As many as allowed, any of which may match: a query the database takes.
        let reply = app
            .get(
                &format!("/api/v1/{list}?logical_operator=or&{}", many(100)),
                &app.admin,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{list}: {}", reply.body);
    }
    let values: Vec<String> = (0..1000).map(|i| format!("n{i}")).collect();
    let labels: Vec<String> = (0..150).map(|i| format!("k{i}=v")).collect();
    let too_many = [
        (format!("name=oneof:{}", values.join(",")), "not 1000"),
        (format!("labels_str={}", labels.join(",")), "not 150"),
    ];
    for (filter, words) in too_many {
        let path = format!("/api/v1/service_connectors?{filter}");
        let reply = app.get(&path, &app.admin).await;
        refused(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValueError",
            &[words],
        );
    }
    app.stop().await;
}

/// Reads from a connection until the server closes it; `None` if it stays open longer than
/// `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(bound, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_headers_is_cut_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.header_read_timeout_seconds = 1;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = read_until_closed(&mut slow, Duration::from_secs(20)).await;
    assert!(
        closed.is_some(),
        "a connection with half a request head stayed open"
    );
    // A connection that sends nothing at all goes the same way.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(20))
            .await
            .is_some()
    );
    // Whole requests are served as before.
    assert_eq!(app.get("/api/v1/info", "").await.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_in_our_format() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.max_connections = 2;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    // The harness's own client may hold a kept-alive connection: take both slots with ours.
    let mut held = Vec::new();
    let mut answered_busy = None;
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = vec![0u8; 4096];
        let n = stream.read(&mut buffer).await.unwrap();
        let head = String::from_utf8_lossy(&buffer[..n]).into_owned();
        if head.starts_with("HTTP/1.1 503") {
            answered_busy = Some(head);
            break;
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }
    let busy = answered_busy.expect("a connection beyond the cap is refused");
    assert!(busy.contains("retry-after: 1"), "{busy}");
    assert!(busy.contains(r#"{"detail":["RuntimeError","#), "{busy}");
    // Once a connection closes, its slot serves again.
    let mut closing = held.pop().unwrap();
    closing
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut closing, Duration::from_secs(20))
            .await
            .is_some()
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut served = None;
    for _ in 0..50 {
        let reply = app.send(client.get(app.url("/health"))).await;
        if reply.status == StatusCode::OK {
            served = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        // The server sees the close when its connection task next polls; ask again.
        tokio::task::yield_now().await;
    }
    assert!(served.is_some(), "a freed slot serves again");
    drop(held);
    app.stop().await;
}

fn from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn log_in(app: &TestApp, client: &reqwest::Client, user: &str, password: &str) -> Reply {
    let form = [
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
    ];
    app.send(client.post(app.url("/api/v1/login")).form(&form))
        .await
}

async fn failing_on_purpose_locks_nobody_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.login_max_failures_per_user = 5;
        config.login_max_failures_per_user_all_addresses = 7;
    })
    .await;
    let (first, second, third) = (from("127.0.0.1"), from("127.0.0.2"), from("127.0.0.3"));
    for _ in 0..5 {
        let reply = log_in(&app, &first, "default", "wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // The address that failed waits, even with the right password …
    let reply = log_in(&app, &first, "default", ADMIN_PASSWORD).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert!(reply.headers.contains_key("retry-after"));
    // … another address is not refused the right password.
    log_in(&app, &second, "default", ADMIN_PASSWORD).await.ok();

    // Past the ceiling for the user across addresses, the addresses that failed are refused and
    // a clean one is only slowed.
    for _ in 0..2 {
        let reply = log_in(&app, &second, "default", "wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = log_in(&app, &second, "default", ADMIN_PASSWORD).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    let reply = log_in(&app, &third, "default", ADMIN_PASSWORD).await.ok();
    assert!(reply["access_token"].is_string());
    app.stop().await;
}

/// A presented API key's secret part guessed wrong: the key's failures count per address as
/// a password's do, so guessing stops there, and the key still logs in from elsewhere.
async fn api_key_guesses_are_limited_like_passwords(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.login_max_failures_per_user = 3).await;
    let key = app.create_service_account("ci-bot", "default").await;
    let key_text = key["body"]["key"].as_str().unwrap().to_owned();
    // The same key id with another secret, as a guesser who saw the id would send.
    let guessed = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let encoded = key_text.strip_prefix("ZENKEY_").unwrap();
        let mut decoded: Value = serde_json::from_slice(&engine.decode(encoded).unwrap()).unwrap();
        decoded["key"] = json!("a guess");
        format!("ZENKEY_{}", engine.encode(decoded.to_string()))
    };
    let key_login = async |client: &reqwest::Client, key: &str| {
        let form = [("grant_type", "zenml-api-key"), ("password", key)];
        app.send(client.post(app.url("/api/v1/login")).form(&form))
            .await
    };
    let (first, second) = (from("127.0.0.1"), from("127.0.0.2"));
    for _ in 0..3 {
        let reply = key_login(&first, &guessed).await;
        refused(&reply, StatusCode::UNAUTHORIZED, "CredentialsNotValid", &[]);
    }
    let reply = key_login(&first, &key_text).await;
    refused(
        &reply,
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &["Too many failed login attempts"],
    );
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0, "{wait}");
    let login = key_login(&second, &key_text).await.ok();
    assert!(login["access_token"].is_string(), "{login}");
    app.stop().await;
}

async fn sessions_end_when_the_account_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", "default", "member").await;
    let other = app.login("alice", "alice password").await;
    let me = |token: String| {
        let app = &app;
        async move { app.get("/api/v1/current-user", &token).await.status }
    };

    // A password change ends every earlier session but the one that made it.
    app.put(
        "/api/v1/current-user",
        &alice,
        json!({"password": "alice new password", "old_password": "alice password"}),
    )
    .await
    .ok();
    assert_eq!(me(alice.clone()).await, StatusCode::OK);
    let ended = app.get("/api/v1/current-user", &other).await;
    refused(
        &ended,
        StatusCode::UNAUTHORIZED,
        "CredentialsNotValid",
        &["the session has ended"],
    );
    assert!(ended.headers.contains_key("www-authenticate"));
    let fresh = app.login("alice", "alice new password").await;
    assert_eq!(me(fresh.clone()).await, StatusCode::OK);

    // A deactivation ends them all, and a reactivation does not bring them back.
    app.put("/api/v1/users/alice", &app.admin, json!({"active": false}))
        .await
        .ok();
    app.put("/api/v1/users/alice", &app.admin, json!({"active": true}))
        .await
        .ok();
    for token in [&alice, &fresh] {
        assert_eq!(me(token.clone()).await, StatusCode::UNAUTHORIZED);
    }
    // An administrator's new password for her ends them too.
    let again = app.login("alice", "alice new password").await;
    app.put(
        "/api/v1/users/alice",
        &app.admin,
        json!({"password": "set by the admin"}),
    )
    .await
    .ok();
    assert_eq!(me(again).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(app.admin.clone()).await, StatusCode::OK);

    // Signing out everywhere: by an administrator, or by the user herself.
    let third = app.login("alice", "set by the admin").await;
    app.delete("/api/v1/users/alice/sessions", &app.admin)
        .await
        .ok();
    assert_eq!(me(third).await, StatusCode::UNAUTHORIZED);
    let fourth = app.login("alice", "set by the admin").await;
    let bob = app.create_user("bob", "default", "member").await;
    let reply = app.delete("/api/v1/users/alice/sessions", &bob).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(me(fourth.clone()).await, StatusCode::OK);
    app.delete("/api/v1/users/alice/sessions", &fourth)
        .await
        .ok();
    assert_eq!(me(fourth).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn device_codes_are_bound_to_their_client_and_their_guesses_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let server = &app;
    let start = |client_id: uuid::Uuid| async move {
        server
            .send(
                server
                    .client
                    .post(server.url("/api/v1/device_authorization"))
                    .form(&[("client_id", client_id.to_string())]),
            )
            .await
            .ok()
    };
    let poll = |code: String, client_id: uuid::Uuid| async move {
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
            ),
            ("device_code", code),
            ("client_id", client_id.to_string()),
        ];
        server
            .send(server.client.post(server.url("/api/v1/login")).form(&form))
            .await
    };
    let client = uuid::Uuid::new_v4();
    let device = start(client).await;
    let device_id = device["verification_uri_complete"]
        .as_str()
        .unwrap()
        .split("device_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let code = device["device_code"].as_str().unwrap().to_owned();
    app.put(
        &format!("/api/v1/devices/{device_id}/verify"),
        &app.admin,
        json!({"user_code": device["user_code"]}),
    )
    .await
    .ok();
    let stolen = poll(code.clone(), uuid::Uuid::new_v4()).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert_eq!(stolen.body, json!({"error": "invalid_client"}));
    let token = poll(code, client).await.ok();
    assert!(token["access_token"].is_string());

    // Five wrong user codes, and the login is gone: the right code no longer approves it.
    let device = start(client).await;
    let device_id = device["verification_uri_complete"]
        .as_str()
        .unwrap()
        .split("device_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/devices/{device_id}/verify");
    for guess in 0..5 {
        let reply = app
            .put(
                &path,
                &app.admin,
                json!({"user_code": format!("WRONG{guess}")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let reply = app
        .put(&path, &app.admin, json!({"user_code": device["user_code"]}))
        .await;
    refused(
        &reply,
        StatusCode::NOT_FOUND,
        "KeyError",
        &["dropped after 5 wrong codes"],
    );
    let polled = poll(device["device_code"].as_str().unwrap().to_owned(), client).await;
    assert_eq!(polled.body, json!({"error": "invalid_grant"}));
    app.stop().await;
}

async fn responses_carry_the_right_owner_and_error_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.get("/api/v1/current-user", &app.admin).await.ok();
    let connector = app
        .post(
            "/api/v1/service_connectors",
            &app.admin,
            crate::components::azure_connector("owned", json!({})),
        )
        .await
        .ok();
    let owner = &connector["resources"]["user"];
    assert_eq!(owner["id"], me["id"]);
    assert_eq!(owner["body"]["created"], me["body"]["created"]);
    assert_eq!(owner["body"]["updated"], me["body"]["updated"]);
    assert_ne!(owner["body"]["created"], connector["body"]["created"]);

    let secret = app
        .create_secret(&app.admin, "owned", false, json!({"k": "v"}))
        .await;
    assert_eq!(secret["resources"]["user"]["name"], "default");
    let read = app
        .get(&format!("/api/v1/secrets/{}", id_of(&secret)), &app.admin)
        .await
        .ok();
    assert_eq!(read["resources"]["user"]["id"], me["id"]);
    let listed = app.get("/api/v1/secrets", &app.admin).await.ok();
    assert_eq!(listed["items"][0]["resources"]["user"]["name"], "default");

    let long = format!("/api/v1/info?pad={}", "x".repeat(9000));
    refused(
        &app.get(&long, "").await,
        StatusCode::URI_TOO_LONG,
        "ValueError",
        &["longer than 8192 bytes"],
    );
    let big = app
        .send(
            app.client
                .get(app.url("/api/v1/info"))
                .header("x-padding", "x".repeat(20_000)),
        )
        .await;
    refused(
        &big,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "ValueError",
        &["larger than 16384 bytes"],
    );
    app.stop().await;
}

async fn inputs_are_bounded_and_plainly_printable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let mut connector = crate::components::azure_connector("described", json!({}));
    connector["description"] = json!("d".repeat(70_000));
    refused(
        &app.post("/api/v1/service_connectors", token, connector.clone())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValueError",
        &["description", "at most 65535 characters"],
    );
    connector["description"] = json!("d".repeat(65_535));
    connector["resource_types"] = json!(vec!["blob-container"; 50_000]);
    let stored = app
        .post("/api/v1/service_connectors", token, connector)
        .await
        .ok();
    assert_eq!(stored["body"]["resource_types"], json!(["blob-container"]));

    for (field, value, words) in [
        (
            "full_name",
            json!("f".repeat(300)),
            "at most 255 characters",
        ),
        ("full_name", json!("Ada\u{7}Lovelace"), "control characters"),
        ("email", json!("ada@example.com\n"), "control characters"),
    ] {
        let reply = app
            .put("/api/v1/current-user", token, json!({ field: value }))
            .await;
        refused(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValueError",
            &[field, words],
        );
    }
    for name in ["admin\u{202E}nimda", "zero\u{200B}width", "\u{FEFF}bom"] {
        let reply = app
            .post(
                "/api/v1/secrets",
                token,
                json!({"name": name, "values": {}}),
            )
            .await;
        refused(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValueError",
            &["name", "invisible formatting characters"],
        );
    }
    app.stop().await;
}

/// The document says what lists take (their query parameters, none in the path), what errors
/// look like on every operation, and what timestamps look like: as they are sent.
async fn the_document_says_what_is_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = app.get("/openapi.json", "").await.ok();
    for path in ["/api/v1/service_connectors", "/api/v1/secrets"] {
        let list = &document["paths"][path]["get"];
        let parameters = list["parameters"].as_array().unwrap();
        let named = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{path} does not declare {name}"))
        };
        for name in [
            "page",
            "size",
            "sort_by",
            "logical_operator",
            "hydrate",
            "name",
        ] {
            assert_eq!(named(name)["in"], "query");
        }
        assert!(parameters.iter().all(|p| p["in"] == "query"), "{path}");
        for status in ["400", "401", "404", "422"] {
            assert_eq!(
                list["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{path} {status}"
            );
        }
    }
    let connectors = &document["paths"]["/api/v1/service_connectors"]["get"]["parameters"];
    assert!(
        connectors
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "expand_secrets" && p["schema"]["type"] == "boolean")
    );
    let create = &document["paths"]["/api/v1/service_connectors"]["post"]["responses"];
    assert!(create["409"].is_object() && create["413"].is_object());
    let pattern = document["components"]["schemas"]["Timestamp"]["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = app.get("/api/v1/current-user", &app.admin).await.ok()["body"]["created"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!sent.ends_with('Z') && !sent.contains('+'), "{sent}");
    assert!(
        pattern.starts_with('^') && pattern.contains("(Z|[+-]"),
        "{pattern}"
    );
    let name = &document["components"]["schemas"]["EntityName"];
    assert_eq!(
        (name["minLength"].as_u64(), name["maxLength"].as_u64()),
        (Some(1), Some(255))
    );
    let password = &document["components"]["schemas"]["Password"];
    assert_eq!(password["minLength"], 8);
    app.stop().await;
}

async fn every_foreign_key_has_an_index(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.db.unindexed_foreign_keys().await, Vec::<String>::new());
    app.stop().await;
}

on_both_backends!(
    filters_are_bounded_with_a_422,
    failing_on_purpose_locks_nobody_out,
    api_key_guesses_are_limited_like_passwords,
    sessions_end_when_the_account_changes,
    device_codes_are_bound_to_their_client_and_their_guesses_counted,
    responses_carry_the_right_owner_and_error_bodies,
    inputs_are_bounded_and_plainly_printable,
    the_document_says_what_is_served,
    every_foreign_key_has_an_index,
);
