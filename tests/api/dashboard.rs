//! The web dashboard, in a real browser (headless Chromium) against the fake Azure: signing in,
//! the connectors list and its filters, registering, verifying, editing and sharing a
//! connector, tenancy, secrets and signing out; and the dashboard's defences (escaping, CSRF,
//! cookie flags, security headers, sessions that end, no secret in any page).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::{estate, register, service_principal};
use crate::browser::Browser;
use crate::components::create_component;
use crate::fakes::azure::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, FakeAzure};
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp, id_of, on_both_backends};

/// The id of the workspace's default orchestrator.
async fn default_orchestrator(app: &TestApp) -> String {
    let listed = app
        .get(
            "/api/v1/components?type=orchestrator&name=default",
            &app.admin,
        )
        .await
        .ok();
    listed["items"][0]["id"].as_str().unwrap().to_owned()
}

/// Planted in a secret; no page may ever contain it.
const PLANTED: &str = "planted-secret-value-7f3a";

/// Secret values no page may show: every page a test's browser lands on is searched for them.
const SECRETS: &[&str] = &[DEFAULT_CLIENT_SECRET, PLANTED, "rotated-secret"];

async fn a_connector_is_registered_verified_shared_and_seen_in_the_browser(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    app.create_user("alice", "default", "member").await;
    app.create_workspace("elsewhere").await;
    app.add_member("elsewhere", "default", "admin").await;
    app.create_user("mallory", "elsewhere", "member").await;
    let mut ml = service_principal("seed-ml", DEFAULT_CLIENT_SECRET);
    ml["labels"] = json!({ "team": "ml" });
    register(&app, ml).await;
    let mut web = service_principal("seed-web", DEFAULT_CLIENT_SECRET);
    web["labels"] = json!({ "team": "web" });
    register(&app, web).await;
    app.create_secret(&app.admin, "seeded", false, json!({ "token": PLANTED }))
        .await;

    let browser = Browser::open(&app.base, &format!("flow-{backend:?}"), SECRETS).await;
    browser.sign_in("default", ADMIN_PASSWORD).await;
    assert_eq!(browser.texts("td.name").await, ["seed-web", "seed-ml"]);
    assert_eq!(browser.text("total").await, "2");
    browser.screenshot("connectors").await;

    // Filters: by label, then by name.
    browser.fill("filter-label", "team=ml").await;
    browser.click("apply-filters").await;
    assert_eq!(browser.texts("td.name").await, ["seed-ml"]);
    browser.fill("filter-label", "").await;
    browser.fill("filter-name", "web").await;
    browser.click("apply-filters").await;
    assert_eq!(browser.texts("td.name").await, ["seed-web"]);
    browser.screenshot("filtered").await;

    // Register through the form: verify first, then register.
    browser
        .goto("/connectors/new?auth_method=service-principal")
        .await;
    browser.fill("name", "az-form").await;
    browser.fill("config-tenant_id", DEFAULT_TENANT_ID).await;
    browser.fill("config-client_id", DEFAULT_CLIENT_ID).await;
    browser
        .fill("config-client_secret", DEFAULT_CLIENT_SECRET)
        .await;
    browser.fill("labels", "team=ml").await;
    browser.click("verify-draft").await;
    let reached = browser.text("resources").await;
    assert!(
        reached.contains("az://data") && reached.contains("az://models"),
        "{reached}"
    );
    assert_eq!(
        browser
            .id("name")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "az-form"
    );
    // The secret was not sent back: it is entered again.
    assert_eq!(
        browser
            .id("config-client_secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        ""
    );
    browser.screenshot("register-verified").await;
    browser
        .fill("config-client_secret", DEFAULT_CLIENT_SECRET)
        .await;
    browser.click("register-save").await;
    assert_eq!(
        browser.text("notice").await,
        "The connector was registered."
    );
    assert_eq!(browser.text("connector-name").await, "az-form");
    assert_eq!(browser.text("sharing").await, "private to its owner");
    assert_eq!(browser.text("last-verified").await, "never");
    let id = browser
        .path()
        .await
        .split('/')
        .nth(2)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    browser.click("verify").await;
    let reached = browser.text("resources").await;
    assert!(
        reached.contains("az://data") && reached.contains("reg1"),
        "{reached}"
    );
    let last = browser.text("last-verified").await;
    assert!(
        last.starts_with("ok ") && last.ends_with("resources"),
        "{last}"
    );
    assert!(
        browser
            .text("configuration")
            .await
            .contains("client_secret set (hidden)")
    );
    browser.screenshot("connector-verified").await;

    // Edit labels and share it.
    browser.fill("edit-labels", "team=ml\nenv=prod").await;
    browser.tick("edit-shared").await;
    browser.click("save").await;
    assert_eq!(browser.text("notice").await, "The changes were saved.");
    assert_eq!(browser.text("labels").await, "env=prod team=ml");
    assert_eq!(browser.text("sharing").await, "shared with the workspace");
    let stored = app
        .get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
        .await
        .ok();
    assert_eq!(
        stored["metadata"]["labels"],
        json!({ "env": "prod", "team": "ml" })
    );
    assert_eq!(stored["body"]["shared"], true);
    // The secret survived an edit that did not touch it.
    assert_eq!(
        stored["metadata"]["configuration"]["client_secret"],
        DEFAULT_CLIENT_SECRET
    );

    browser.goto("/").await;
    assert_eq!(
        browser.texts("td.name").await,
        ["az-form", "seed-web", "seed-ml"]
    );
    browser.screenshot("connectors-after").await;
    browser.goto(&format!("/connectors/{id}")).await;

    // A new secret value, entered in the edit form, replaces the stored one.
    azure.set_client_secret(DEFAULT_CLIENT_ID, "rotated-secret");
    browser
        .fill("edit-secret-client_secret", "rotated-secret")
        .await;
    browser.click("save").await;
    assert_eq!(browser.text("notice").await, "The changes were saved.");
    browser.click("verify").await;
    assert!(browser.text("resources").await.contains("az://data"));
    let stored = app
        .get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
        .await
        .ok();
    assert_eq!(
        stored["metadata"]["configuration"]["client_secret"],
        "rotated-secret"
    );

    // A connector in use is not deleted, and the page says why.
    let store = create_component(&app, &app.admin, json!({
        "name": "lake", "type": "artifact_store", "flavor": "azure",
        "configuration": { "path": "az://data" }, "connector": id, "connector_resource_id": "az://data",
    }))
    .await;
    let stack = json!({ "name": "ml-stack", "components": {
        "artifact_store": [id_of(&store)], "orchestrator": [default_orchestrator(&app).await],
    }});
    app.post("/api/v1/stacks", &app.admin, stack).await.ok();
    browser.goto(&format!("/connectors/{id}")).await;
    assert_eq!(
        browser.texts("#components li").await,
        ["lake artifact_store azure"]
    );
    browser.click("delete").await;
    assert!(
        browser
            .text("problem")
            .await
            .contains("still referenced by 1 stack components")
    );
    app.get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
        .await
        .ok();
    browser.goto("/components").await;
    let row = browser.text("components").await;
    assert!(
        row.contains("lake artifact_store azure az-form az://data default"),
        "{row}"
    );
    browser.goto("/stacks").await;
    let stacks = browser.text("stacks").await;
    assert!(
        stacks.contains("artifact_store lake via az-form"),
        "{stacks}"
    );
    browser.screenshot("stacks").await;

    // The form says where implicit authentication is off, and what turns it on.
    browser.goto("/connectors/new?auth_method=implicit").await;
    assert!(
        browser
            .text("refused")
            .await
            .contains("ZENML_ENABLE_IMPLICIT_AUTH_METHODS=true")
    );

    // The switcher moves to another workspace.
    browser
        .id("workspace-switcher")
        .await
        .select_by_value("elsewhere")
        .await
        .unwrap();
    browser.click("switch-workspace").await;
    assert_eq!(browser.text("empty").await, "No connectors match.");
    assert_eq!(browser.path().await, "/?workspace=elsewhere");
    browser.goto("/").await;

    // Secrets: create one, see it, delete it.
    browser.goto("/secrets").await;
    assert_eq!(browser.texts("td.name").await, ["seeded"]);
    browser.fill("secret-name", "db-password").await;
    browser
        .fill("secret-values", &format!("password={PLANTED}"))
        .await;
    browser.click("create-secret").await;
    assert_eq!(browser.text("notice").await, "The secret was created.");
    assert_eq!(browser.texts("td.name").await, ["db-password", "seeded"]);
    browser.screenshot("secrets").await;
    // An update adds the new values and keeps the others.
    browser.fill("values-db-password", "user=svc-account").await;
    browser.click("update-db-password").await;
    assert_eq!(browser.text("notice").await, "The secret was updated.");
    let listed = app
        .get("/api/v1/secrets?name=db-password", &app.admin)
        .await
        .ok();
    let secret = format!("/api/v1/secrets/{}", id_of(&listed["items"][0]));
    let stored = app.get(&secret, &app.admin).await.ok();
    assert_eq!(
        stored["body"]["values"],
        json!({ "password": PLANTED, "user": "svc-account" })
    );
    browser.click("delete-db-password").await;
    assert_eq!(browser.text("notice").await, "The secret was deleted.");
    assert_eq!(browser.texts("td.name").await, ["seeded"]);

    browser.goto("/server").await;
    assert_eq!(
        browser.text("implicit").await,
        "disabled (ZENML_ENABLE_IMPLICIT_AUTH_METHODS is not set to true)"
    );
    assert!(
        browser
            .text("users")
            .await
            .contains("alice user active default (member)")
    );
    browser.screenshot("server").await;

    // Signing out ends the browser's session.
    browser.click("sign-out").await;
    browser.id("sign-in").await;
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/login");

    // A member sees the shared connector, and may not edit it.
    browser.sign_in("alice", "alice password").await;
    assert_eq!(browser.texts("td.name").await, ["az-form"]);
    browser.goto(&format!("/connectors/{id}")).await;
    assert_eq!(browser.text("owner").await, "default");
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Id("edit"))
            .await
            .is_err()
    );
    browser.screenshot("as-member").await;
    browser.click("sign-out").await;
    browser.id("sign-in").await;

    // Someone outside the workspace sees none of it.
    browser.sign_in("mallory", "mallory password").await;
    assert_eq!(browser.text("empty").await, "No connectors match.");
    browser
        .goto(&format!("/connectors/{id}?workspace=default"))
        .await;
    assert!(
        browser.text("problem").await.contains("default"),
        "the refusal names what was asked"
    );
    assert!(!browser.source().await.contains("az-form"));
    browser.goto(&format!("/connectors/{id}")).await;
    assert!(!browser.source().await.contains("az-form"));
    browser.close().await;
    app.stop().await;
}

/// A signed-in session as a plain HTTP client holds it: its cookie header and the CSRF token
/// its forms carry.
struct HttpSession {
    cookie: String,
    csrf: String,
}

/// The cookie `name`'s whole `Set-Cookie` line in a response.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|line| line.starts_with(&format!("{name}=")))
}

/// A client that shows redirects instead of following them.
fn not_following() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden field `name` in a page.
fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let after = page
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} field"));
    after.split('"').next().unwrap().to_owned()
}

/// Loads the sign-in page and submits it, as a browser would: the answer.
async fn submit_sign_in(app: &TestApp, user: &str, password: &str) -> reqwest::Response {
    let client = not_following();
    let form = client.get(app.url("/login")).send().await.unwrap();
    let form_cookie = set_cookie(&form, "connector_hub_sign_in").unwrap();
    let form_cookie = form_cookie.split(';').next().unwrap().to_owned();
    let token = hidden_field(&form.text().await.unwrap(), "form_token");
    let fields = [
        ("username", user),
        ("password", password),
        ("form_token", &token),
    ];
    let request = client
        .post(app.url("/login"))
        .header("cookie", &form_cookie);
    request.form(&fields).send().await.unwrap()
}

/// Signs in with the sign-in form: the session, and its `Set-Cookie` line.
async fn sign_in_over_http(app: &TestApp, user: &str, password: &str) -> (HttpSession, String) {
    let signed_in = submit_sign_in(app, user, password).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let line = set_cookie(&signed_in, "connector_hub_session").expect("a session cookie");
    let cookie = line.split(';').next().unwrap().to_owned();
    let list = not_following()
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await;
    let csrf = hidden_field(&list.unwrap().text().await.unwrap(), "csrf");
    (HttpSession { cookie, csrf }, line)
}

async fn post_form(
    app: &TestApp,
    session: &HttpSession,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    not_following()
        .post(app.url(path))
        .header("cookie", &session.cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn forms_need_this_sessions_token_and_cookies_carry_their_flags(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/api/v1/service_connectors",
            &app.admin,
            json!({
                "name": "kept", "connector_type": "azure", "auth_method": "access-token",
                "resource_types": ["azure-generic"], "configuration": { "token": PLANTED },
                "expires_at": "2099-01-01T00:00:00",
            }),
        )
        .await
        .ok();
    let id = id_of(&created);
    let (session, cookie_line) = sign_in_over_http(&app, "default", ADMIN_PASSWORD).await;
    let lifetime = app.config.token_lifetime_seconds;
    assert_eq!(
        cookie_line,
        format!(
            "{}; Path=/; Max-Age={lifetime}; HttpOnly; SameSite=Strict",
            session.cookie
        ),
        "the session cookie's flags (no Secure: this server's URL is http)"
    );

    // A cross-site post carries the cookie (were SameSite ignored) but cannot know the token.
    let delete = format!("/connectors/{id}/delete");
    for form in [
        vec![("workspace", "default")],
        vec![("workspace", "default"), ("csrf", "forged")],
    ] {
        let refused = post_form(&app, &session, &delete, &form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("did not come from this dashboard")
        );
    }
    let sign_out = post_form(&app, &session, "/logout", &[]).await;
    assert_eq!(sign_out.status(), StatusCode::FORBIDDEN);
    app.get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
        .await
        .ok();
    // Another session's token is no good either.
    let (other, _) = sign_in_over_http(&app, "default", ADMIN_PASSWORD).await;
    assert_ne!(other.csrf, session.csrf);
    let refused = post_form(
        &app,
        &session,
        &delete,
        &[("workspace", "default"), ("csrf", &other.csrf)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // With its own token, the form works.
    let deleted = post_form(
        &app,
        &session,
        &delete,
        &[("workspace", "default"), ("csrf", &session.csrf)],
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        deleted.headers()["location"],
        "/?workspace=default&done=deleted"
    );
    let gone = app
        .get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // The sign-in form itself is tied to the browser that loaded it.
    let forged = not_following()
        .post(app.url("/login"))
        .form(&[
            ("username", "default"),
            ("password", ADMIN_PASSWORD),
            ("form_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged, "connector_hub_session").is_none());

    // Pages forbid scripts, framing and referrers.
    let page = not_following()
        .get(app.url("/"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    let headers = page.headers();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.starts_with("default-src 'none';") && !policy.contains("script-src"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    app.stop().await;
}

async fn https_servers_mark_the_session_cookie_secure(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.server_url = Some("https://hub.example.test".into());
    })
    .await;
    let (session, line) = sign_in_over_http(&app, "default", ADMIN_PASSWORD).await;
    assert!(line.starts_with(&session.cookie));
    assert!(
        line.ends_with("; HttpOnly; SameSite=Strict; Secure"),
        "{line}"
    );
    app.stop().await;
}

async fn dashboard_sessions_end_with_the_accounts_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice", "default", "member").await;
    let client = not_following();
    let page = |session: &HttpSession| {
        client
            .get(app.url("/"))
            .header("cookie", session.cookie.clone())
            .send()
    };
    // Signed out everywhere by an admin.
    let (session, _) = sign_in_over_http(&app, "alice", "alice password").await;
    assert_eq!(page(&session).await.unwrap().status(), StatusCode::OK);
    app.delete("/api/v1/users/alice/sessions", &app.admin)
        .await
        .ok();
    let after = page(&session).await.unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()["location"], "/login");
    // Deactivated, then active again: the old session stays ended.
    let (session, _) = sign_in_over_http(&app, "alice", "alice password").await;
    app.put(
        "/api/v1/users/alice",
        &app.admin,
        json!({ "active": false }),
    )
    .await
    .ok();
    assert_eq!(
        page(&session).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    app.put("/api/v1/users/alice", &app.admin, json!({ "active": true }))
        .await
        .ok();
    assert_eq!(
        page(&session).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    // The sign-in page counts failures as the API does.
    for _ in 0..app.config.login_max_failures_per_user {
        let failed = submit_sign_in(&app, "alice", "wrong").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        assert!(
            failed
                .text()
                .await
                .unwrap()
                .contains("invalid username or password")
        );
    }
    let limited = app.try_login("alice", "alice password").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// Fails if the page holds elements made from user input (`markup`) or an alert is open.
async fn assert_nothing_ran(browser: &Browser, markup: &str) {
    let made = browser
        .client
        .find_all(fantoccini::Locator::Css(markup))
        .await
        .unwrap();
    assert!(made.is_empty(), "{markup} was made from user input");
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "no alert is open"
    );
}

/// A name made to run script shows as text, in the list and on its page, and no script runs.
async fn names_are_shown_as_text_and_never_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hostile = "<img src=x onerror=alert(1)>";
    let created = app
        .post(
            "/api/v1/service_connectors",
            &app.admin,
            json!({
                "name": hostile, "connector_type": "azure", "auth_method": "access-token",
                "description": "<script>alert(2)</script>",
                "resource_types": ["azure-generic"], "configuration": { "token": PLANTED },
                "expires_at": "2099-01-01T00:00:00",
                "labels": { "team": "\"><b>bold</b>" },
            }),
        )
        .await
        .ok();
    let id = id_of(&created);
    let browser = Browser::open(&app.base, &format!("escaping-{backend:?}"), SECRETS).await;
    browser.sign_in("default", ADMIN_PASSWORD).await;
    assert_eq!(browser.texts("td.name").await, [hostile]);
    assert_eq!(browser.texts("span.label").await, ["team=\"><b>bold</b>"]);
    assert_nothing_ran(&browser, "td img, td b").await;
    browser.screenshot("hostile-list").await;
    browser.goto(&format!("/connectors/{id}")).await;
    assert_eq!(browser.text("connector-name").await, hostile);
    assert!(
        browser
            .source()
            .await
            .contains("&lt;script&gt;alert(2)&lt;/script&gt;")
    );
    assert_nothing_ran(&browser, "main script, main img").await;
    browser.close().await;
    app.stop().await;
}

/// The value a test reads is what the API returns in a connector's metadata.
fn last_verification(connector: &Value) -> &Value {
    &connector["metadata"]["last_verification"]
}

async fn verifications_are_recorded_on_the_connector(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az-all", DEFAULT_CLIENT_SECRET)).await;
    let path = format!("/api/v1/service_connectors/{id}");
    let before = app.get(&path, &app.admin).await.ok();
    assert_eq!(*last_verification(&before), Value::Null);
    let listed = app.get("/api/v1/service_connectors", &app.admin).await.ok();
    assert_eq!(*last_verification(&listed["items"][0]), Value::Null);

    app.put(&format!("{path}/verify"), &app.admin, json!({}))
        .await
        .ok();
    let after = app.get(&path, &app.admin).await.ok();
    let recorded = last_verification(&after);
    assert_eq!(recorded["error"], Value::Null);
    assert_eq!(
        recorded["resources"],
        json!({ "azure-generic": 1, "blob-container": 2, "docker-registry": 1, "kubernetes-cluster": 2 })
    );
    assert!(
        recorded["verified_at"]
            .as_str()
            .unwrap()
            .starts_with(&app.clock.now().format("%Y-%m-%dT").to_string())
    );
    // A verification is no edit: the connector's own times stay.
    assert_eq!(after["body"]["updated"], before["body"]["updated"]);
    // Lists show it at once, though their pages are kept.
    let listed = app.get("/api/v1/service_connectors", &app.admin).await.ok();
    assert_eq!(last_verification(&listed["items"][0]), recorded);

    // A failure is recorded with the engine's words, and replaces the success.
    let wrong = json!({ "configuration": {
        "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong",
    }});
    app.put(&path, &app.admin, wrong).await.ok();
    let refused = app
        .put(&format!("{path}/verify"), &app.admin, json!({}))
        .await
        .ok();
    let message = refused["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a failure: {refused}"));
    assert!(message.contains("AADSTS7000215"), "{message}");
    let after = app.get(&path, &app.admin).await.ok();
    assert_eq!(last_verification(&after)["error"], message);
    assert_eq!(
        last_verification(&after)["resources"],
        json!({ "azure-generic": 0, "blob-container": 0, "docker-registry": 0, "kubernetes-cluster": 0 })
    );
    // A request that does not fit the connector says nothing about it, and is not recorded.
    let unfit = app
        .put(
            &format!("{path}/verify?resource_type=no-such-type"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(unfit.status, StatusCode::BAD_REQUEST);
    let unchanged = app.get(&path, &app.admin).await.ok();
    assert_eq!(last_verification(&unchanged), last_verification(&after));
    app.stop().await;
}

on_both_backends!(
    a_connector_is_registered_verified_shared_and_seen_in_the_browser,
    forms_need_this_sessions_token_and_cookies_carry_their_flags,
    https_servers_mark_the_session_cookie_secure,
    dashboard_sessions_end_with_the_accounts_tokens,
    names_are_shown_as_text_and_never_run,
    verifications_are_recorded_on_the_connector,
);
