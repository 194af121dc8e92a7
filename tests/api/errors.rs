//! Bad input of every kind gets a 4xx in ZenML's error format: never a 500, a panic or a hang.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp, on_both_backends};

async fn bad_bodies_get_clear_4xx_errors(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 64 * 1024).await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/secrets"))
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
    };
    let cases = [
        (
            raw("{not json", "application/json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(r#"{"name": 5, "values": {}}"#, "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(r#"{"values": {}}"#, "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(r#"{"name": "x", "colour": "red"}"#, "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(r#"{"name": "x", "values": {"k": 1}}"#, "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(r#"{"name": ""}"#, "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(r#"{"name": "x"}"#, "text/plain"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (request, expected) in cases {
        let reply = app.send(request).await;
        assert_eq!(reply.status, expected, "{}", reply.body);
        assert_eq!(reply.error().0, "ValueError");
    }
    let unknown_field = app
        .post(
            "/api/v1/secrets",
            &app.admin,
            json!({"name": "x", "colour": "red"}),
        )
        .await;
    assert!(
        unknown_field.error().1.contains("colour"),
        "the error names the field: {}",
        unknown_field.body
    );

    let huge = "x".repeat(100 * 1024);
    let too_big = app
        .post(
            "/api/v1/secrets",
            &app.admin,
            json!({"name": "big", "values": {"v": huge}}),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.error().0, "ValueError");
    app.stop().await;
}

async fn bad_query_parameters_get_clear_4xx_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/api/v1/secrets?page=0",
        "/api/v1/secrets?page=abc",
        "/api/v1/secrets?size=100000",
        "/api/v1/secrets?sort_by=colour",
        "/api/v1/secrets?logical_operator=xor",
        "/api/v1/secrets?colour=red",
        "/api/v1/secrets?hydrate=perhaps",
        "/api/v1/secrets?id=equals:not-a-uuid",
        "/api/v1/secrets?created=gt:yesterday",
        "/api/v1/secrets?private=startswith:t",
        "/api/v1/current-user?hydrate=sometimes",
        "/api/v1/current-user?colour=red",
    ] {
        let reply = app.get(path, &app.admin).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.error().0, "ValueError", "{path}");
    }
    let bad_id = app.get("/api/v1/secrets/not-a-uuid", &app.admin).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{}", bad_id.body);
    let (class, message) = bad_id.error();
    assert_eq!(class, "ValueError");
    assert!(
        message.starts_with("Invalid URL: Cannot parse `secret_id` with value `not-a-uuid`"),
        "{message}"
    );
    app.stop().await;
}

/// PostgreSQL cannot store or compare text holding a NUL character; such input is a 400 there,
/// never a 500. In paths and queries it is refused on every backend.
async fn nul_characters_get_a_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/api/v1/service_connectors?name=a%00",
        "/api/v1/secrets?name=contains:%00",
        "/api/v1/workspaces/a%00b",
        "/api/v1/service_connectors?project_name_or_id=a%00",
        "/api/v1/users/a%00b",
    ] {
        let reply = app.get(path, &app.admin).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.error().1.contains("NUL"), "{path}: {}", reply.body);
    }

    // A description is free text, in which a NUL is a control character like any other.
    let described = app
        .post(
            "/api/v1/workspaces",
            &app.admin,
            json!({"name": "nul", "description": "a\u{0}b"}),
        )
        .await;
    assert_eq!(
        described.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        described.body
    );
    assert_eq!(described.error().0, "ValueError");
    assert!(described.error().1.contains("description"));
    let listed = app
        .get("/api/v1/workspaces?name=nul", &app.admin)
        .await
        .ok();
    assert_eq!(listed["total"], 0, "nothing half-written");
    let login = app.try_login("a\u{0}b", "password").await;
    match backend {
        Backend::Postgres => {
            assert_eq!(login.status, StatusCode::BAD_REQUEST, "{}", login.body);
        }
        // SQLite looks the name up as it is, and finds no such user.
        Backend::Sqlite => assert_eq!(login.status, StatusCode::UNAUTHORIZED),
    }
    app.stop().await;
}

async fn unknown_routes_and_methods_answer_in_the_error_format(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let missing = app.get("/api/v1/does-not-exist", &app.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error().0, "KeyError");
    let wrong_method = app
        .call(Method::PATCH, "/api/v1/secrets", &app.admin, None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error().0, "MethodNotAllowedError");
    let bad_form = app
        .send(
            app.client
                .post(app.url("/api/v1/login"))
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    assert_eq!(bad_form.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_form.error().0, "ValueError");
    app.stop().await;
}

on_both_backends!(
    bad_bodies_get_clear_4xx_errors,
    nul_characters_get_a_400,
    bad_query_parameters_get_clear_4xx_errors,
    unknown_routes_and_methods_answer_in_the_error_format,
);
