//! Failed-login limits across server processes, and the client address they count by behind
//! reverse proxies (`--trusted-proxies`).

use reqwest::StatusCode;

use crate::harness::{ADMIN_PASSWORD, Backend, TestApp, on_both_backends, test_config};

/// A password login's status, sent with `X-Forwarded-For: forwarded_for` when given.
async fn log_in(
    app: &TestApp,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> StatusCode {
    let form = [
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
    ];
    let mut request = app.client.post(app.url("/api/v1/login")).form(&form);
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    app.send(request).await.status
}

/// The client addresses of the audit log's records of `action`.
async fn client_addresses(app: &TestApp, action: &str) -> Vec<String> {
    let page = app
        .get(
            &format!("/api/v1/audit_events?size=1000&action={action}"),
            &app.admin,
        )
        .await
        .ok();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["client_address"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Two processes on one PostgreSQL database allow, together, exactly the configured number of
/// failures: taking turns, and all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_share_the_failed_login_limit_exactly() {
    const LIMIT: usize = 4;
    let app = TestApp::spawn_with(Backend::Postgres, |config| {
        config.login_max_failures_per_user = LIMIT as u32;
        config.login_max_failures_per_address = 1000;
    })
    .await;
    let peer = app.spawn_peer(|_| {}).await;
    let servers = [&app, &peer];

    // Taking turns: the limit's failures, then every process refuses, the right password too.
    for turn in 0..LIMIT {
        let status = log_in(servers[turn % 2], "default", "a guess", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {turn}");
    }
    for server in servers {
        for password in ["a guess", ADMIN_PASSWORD] {
            let status = log_in(server, "default", password, None).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        }
    }

    // All at once: attempts whose credentials are still being checked count, so no more than
    // the limit get as far as checking them.
    let extra = 60;
    let attempts = (0..LIMIT + extra).map(|i| log_in(servers[i % 2], "nobody", "a guess", None));
    let statuses = futures::future::join_all(attempts).await;
    let count = |wanted: StatusCode| statuses.iter().filter(|s| **s == wanted).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (LIMIT, extra),
        "{statuses:?}"
    );

    // Each failure is one row per count; successful logins (both processes' admins) left none.
    assert_eq!(
        app.db.row_count("login_failures").await,
        (2 * LIMIT * 3) as i64
    );
    peer.stop().await;
    app.stop().await;
}

/// Without trusted proxies, `X-Forwarded-For` is the client's to write and changes nothing.
async fn forwarded_for_is_ignored_without_trusted_proxies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.login_max_failures_per_user = 3).await;
    for i in 0..3 {
        let forwarded = format!("203.0.113.{i}");
        let status = log_in(&app, "default", "a guess", Some(&forwarded)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = log_in(&app, "default", "a guess", Some("203.0.113.99")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let recorded = client_addresses(&app, "auth.login_failed").await;
    assert_eq!(recorded, vec!["127.0.0.1"; 3]);
    app.stop().await;
}

/// Behind a trusted proxy, the client is the rightmost forwarded address the proxies did not
/// write themselves: each counts apart, and what a client prepends is not believed.
async fn trusted_proxies_name_the_forwarded_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.login_max_failures_per_user = 3;
        config.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    for _ in 0..3 {
        let status = log_in(&app, "default", "a guess", Some("203.0.113.1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let refused = log_in(&app, "default", ADMIN_PASSWORD, Some("203.0.113.1")).await;
    assert_eq!(refused, StatusCode::TOO_MANY_REQUESTS);
    // Prepending another address, or going through a second trusted proxy, is still
    // 203.0.113.1.
    for chain in ["198.51.100.7, 203.0.113.1", "203.0.113.1, 127.0.0.5"] {
        let status = log_in(&app, "default", ADMIN_PASSWORD, Some(chain)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{chain}");
    }
    // Another client behind the same proxy is counted apart.
    let other = log_in(&app, "default", "a guess", Some("203.0.113.2")).await;
    assert_eq!(other, StatusCode::UNAUTHORIZED);
    let signed_in = log_in(&app, "default", ADMIN_PASSWORD, Some("203.0.113.2")).await;
    assert_eq!(signed_in, StatusCode::OK);

    // The audit log records the forwarded client.
    let failed = client_addresses(&app, "auth.login_failed").await;
    let mut expected = vec!["203.0.113.1"; 3];
    expected.push("203.0.113.2");
    let mut failed_sorted = failed.clone();
    failed_sorted.sort();
    assert_eq!(failed_sorted, expected, "{failed:?}");
    let logins = client_addresses(&app, "auth.login").await;
    assert!(
        logins.iter().any(|address| address == "203.0.113.2"),
        "{logins:?}"
    );
    app.stop().await;
}

on_both_backends!(
    forwarded_for_is_ignored_without_trusted_proxies,
    trusted_proxies_name_the_forwarded_client,
);

/// An entry that is neither an address nor a CIDR range stops start-up, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_trusted_proxy_stops_start_up() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = crate::harness::TestDatabase::new(Backend::Sqlite, data_dir.path().to_owned()).await;
    let mut config = test_config(&db);
    config.trusted_proxies = vec!["10.0.0.0/8".into(), "proxy.internal".into()];
    let error = connector_hub::app::Server::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("--trusted-proxies: 'proxy.internal' is neither an IP address"),
        "{error}"
    );
}
