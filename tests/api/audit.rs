//! The audit log: a record of every security-relevant action, written with the change it
//! records (or before a read is answered), chained by hash, verifiable and purgeable from the
//! command line, and readable by administrators only.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use connector_hub::domain::audit::{Actor, AuditEvent, GENESIS_HASH, Outcome, action};

use crate::azure::{estate, register, service_principal};
use crate::fakes::azure::{DEFAULT_CLIENT_SECRET, FakeAzure};
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp, id_of, on_both_backends, test_master_key};

/// Every record the admin may read, oldest first, once the server has chained them all.
async fn records(app: &TestApp, query: &str) -> Vec<Value> {
    app.audit.chain_now().await.unwrap();
    let page = app
        .get(
            &format!("/api/v1/audit_events?size=10000&sort_by=asc:created{query}"),
            &app.admin,
        )
        .await
        .ok();
    page["items"].as_array().unwrap().clone()
}

/// `(action, target name, outcome)` of each record.
fn summary(records: &[Value]) -> BTreeSet<(String, String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"]["name"].as_str().unwrap_or("").to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn has(summary: &BTreeSet<(String, String, String)>, action: &str, target: &str, outcome: &str) {
    let wanted = (action.to_owned(), target.to_owned(), outcome.to_owned());
    assert!(summary.contains(&wanted), "{wanted:?} not in {summary:#?}");
}

/// Runs `connector-hub audit …` on the app's database: its exit status and printed JSON.
/// Runs `connector-hub` with `args` on the app's database, as an operator on its host would:
/// with its master key and its audit log file. Whether it succeeded, what it printed (JSON)
/// and its standard error.
fn operator_command(app: &TestApp, args: &[&str]) -> (bool, Value, String) {
    let storage = &app.config.storage;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connector-hub"));
    command.args(args);
    command.env_remove("DATABASE_URL");
    command.env("CONNECTOR_HUB_DATA_DIR", &storage.data_dir);
    command.env("CONNECTOR_HUB_ENCRYPTION_KEY", test_master_key());
    if let Some(url) = &storage.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(file) = &storage.audit_log_file {
        command.env("CONNECTOR_HUB_AUDIT_LOG_FILE", file);
    }
    let output = command.output().expect("the binary runs");
    let printed = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), printed, stderr)
}

fn audit_cli(app: &TestApp, args: &[&str]) -> (bool, Value, String) {
    let args: Vec<&str> = ["audit"].iter().chain(args).copied().collect();
    operator_command(app, &args)
}

/// The records an operator's commands write, and those they chain, go to the audit log file
/// like a server's.
async fn commands_append_their_records_to_the_audit_log_file(backend: Backend) {
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let log_path = log_file.path().to_owned();
    let app = TestApp::spawn_with(backend, |config| {
        config.storage.audit_log_file = Some(log_path.clone());
    })
    .await;
    let (rotated, _, stderr) = operator_command(&app, &["keys", "rotate"]);
    assert!(rotated, "{stderr}");
    let (purged, _, stderr) = audit_cli(&app, &["purge", "--before", "2000-01-01"]);
    assert!(purged, "{stderr}");

    let lines: Vec<Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for action in ["key.rotated", "audit.purged"] {
        let by_operator = lines
            .iter()
            .find(|l| l["action"] == action && l["actor"]["kind"] == "operator")
            .unwrap_or_else(|| panic!("the operator's {action} is in the file: {lines:#?}"));
        assert!(by_operator["chain"]["hash"].is_string(), "{by_operator}");
    }
    let ids: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), lines.len(), "each record once");
    app.stop().await;
}

async fn each_listed_action_writes_its_record(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let log_path = log_file.path().to_owned();
    let app = TestApp::spawn_with_azure(backend, &azure, |config| {
        config.storage.audit_log_file = Some(log_path.clone());
    })
    .await;
    let admin = app.admin.clone();

    // Logins: by password (and a failed one), and by API key.
    assert_eq!(
        app.try_login("default", "not-the-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let robot_key = app.create_service_account("robot", "default").await;
    let key = app
        .post(
            "/api/v1/service_accounts/robot/api_keys",
            &admin,
            json!({"name": "ci"}),
        )
        .await
        .ok();
    let api_key = key["body"]["key"].as_str().unwrap().to_owned();
    app.try_login_with_api_key(robot_key["body"]["key"].as_str().unwrap())
        .await
        .ok();

    // Secrets: create, read, update, delete.
    let secret = app
        .create_secret(&admin, "db", false, json!({"password": "hunter2-secret"}))
        .await;
    let secret_path = format!("/api/v1/secrets/{}", id_of(&secret));
    app.get(&secret_path, &admin).await.ok();
    app.put(
        &secret_path,
        &admin,
        json!({"values": {"password": "hunter3-secret"}}),
    )
    .await
    .ok();
    app.delete(&secret_path, &admin).await.ok();

    // Connectors: create, read with and without secrets, verify, client, update, delete.
    let id = register(&app, service_principal("az", DEFAULT_CLIENT_SECRET)).await;
    let connector_path = format!("/api/v1/service_connectors/{id}");
    app.get(&connector_path, &admin).await.ok();
    app.get(&format!("{connector_path}?expand_secrets=false"), &admin)
        .await
        .ok();
    app.put(&format!("{connector_path}/verify"), &admin, json!({}))
        .await
        .ok();
    let client = app
        .get(
            &format!("{connector_path}/client?resource_type=kubernetes-cluster&resource_id=rg1/c1"),
            &admin,
        )
        .await
        .ok();
    let cluster_token = client["metadata"]["configuration"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.put(&connector_path, &admin, json!({"description": "mine"}))
        .await
        .ok();

    // Components and stacks.
    let orchestrator = app
        .post(
            "/api/v1/components",
            &admin,
            json!({"name": "orch", "type": "orchestrator", "flavor": "local", "configuration": {}}),
        )
        .await
        .ok();
    let store = app
        .post(
            "/api/v1/components",
            &admin,
            json!({"name": "store", "type": "artifact_store", "flavor": "azure",
                   "configuration": {"path": "az://data"}}),
        )
        .await
        .ok();
    let stack = app
        .post(
            "/api/v1/stacks",
            &admin,
            json!({"name": "ml", "components": {
                "orchestrator": [id_of(&orchestrator)], "artifact_store": [id_of(&store)]}}),
        )
        .await
        .ok();
    let stack_path = format!("/api/v1/stacks/{}", id_of(&stack));
    app.put(&stack_path, &admin, json!({"description": "the ML stack"}))
        .await
        .ok();
    app.delete(&stack_path, &admin).await.ok();
    let store_path = format!("/api/v1/components/{}", id_of(&store));
    app.put(&store_path, &admin, json!({"name": "store2"}))
        .await
        .ok();
    app.delete(&store_path, &admin).await.ok();
    app.delete(&connector_path, &admin).await.ok();

    // Users, workspaces and memberships.
    app.create_workspace("team").await;
    app.put(
        "/api/v1/workspaces/team",
        &admin,
        json!({"description": "a team"}),
    )
    .await
    .ok();
    app.create_user("alice", "default", "member").await;
    app.add_member("team", "alice", "member").await;
    app.add_member("team", "alice", "admin").await;
    app.delete("/api/v1/workspaces/team/members/alice", &admin)
        .await
        .ok();
    app.put("/api/v1/users/alice", &admin, json!({"full_name": "Alice"}))
        .await
        .ok();
    app.delete("/api/v1/users/alice/sessions", &admin)
        .await
        .ok();
    app.delete("/api/v1/users/alice", &admin).await.ok();
    app.delete("/api/v1/workspaces/team", &admin).await.ok();

    // Keys: rotation, rewrap and removal of the retired key.
    let keys = app.get("/api/v1/keys", &admin).await.ok();
    let first_key = keys[0]["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/keys/rotate", &admin, json!({}))
        .await
        .ok();
    app.post("/api/v1/keys/rewrap", &admin, json!({}))
        .await
        .ok();
    app.delete(&format!("/api/v1/keys/{first_key}"), &admin)
        .await
        .ok();

    // Implicit authentication, off by default, is refused and recorded.
    let implicit = app
        .post(
            "/api/v1/service_connectors",
            &admin,
            json!({"name": "imp", "connector_type": "azure", "auth_method": "implicit",
                   "resource_types": ["azure-generic"], "configuration": {}}),
        )
        .await;
    assert_eq!(implicit.status, StatusCode::FORBIDDEN);

    let all = records(&app, "").await;
    let found = summary(&all);
    for (action, target) in [
        ("auth.login", ""),
        ("user.created", "robot"),
        ("api_key.created", "ci"),
        ("secret.created", "db"),
        ("secret.read", "db"),
        ("secret.updated", "db"),
        ("secret.deleted", "db"),
        ("connector.created", "az"),
        ("connector.secrets_read", "az"),
        ("connector.verified", "az"),
        ("connector.client_issued", "az"),
        ("connector.updated", "az"),
        ("connector.deleted", "az"),
        ("component.created", "orch"),
        ("component.created", "store"),
        ("component.updated", "store2"),
        ("component.deleted", "store2"),
        ("stack.created", "ml"),
        ("stack.updated", "ml"),
        ("stack.deleted", "ml"),
        ("workspace.created", "team"),
        ("workspace.updated", "team"),
        ("workspace.member_added", "alice"),
        ("workspace.member_updated", "alice"),
        ("workspace.member_removed", "alice"),
        ("user.created", "alice"),
        ("user.updated", "alice"),
        ("user.sessions_ended", "alice"),
        ("user.deleted", "alice"),
        ("workspace.deleted", "team"),
        ("key.rotated", ""),
        ("key.rewrapped", ""),
        ("key.removed", ""),
    ] {
        let outcome = "success";
        if target.is_empty() {
            assert!(
                all.iter()
                    .any(|r| r["action"] == action && r["outcome"] == outcome),
                "{action} not recorded"
            );
        } else {
            has(&found, action, target, outcome);
        }
    }
    // Exactly one secrets read: the read without expand_secrets carries none and is not one.
    let reads = all
        .iter()
        .filter(|r| r["action"] == "connector.secrets_read")
        .count();
    assert_eq!(reads, 1);

    // Refusals and failures, with who tried.
    let failed = all
        .iter()
        .find(|r| r["action"] == "auth.login_failed")
        .expect("the failed login");
    assert_eq!(failed["outcome"], "denied");
    assert_eq!(failed["status"], 401);
    assert_eq!(failed["actor"]["name"], "default");
    assert_eq!(failed["actor"]["kind"], "anonymous");
    assert_eq!(failed["client_address"], "127.0.0.1");
    let refused = all
        .iter()
        .find(|r| r["action"] == "connector.implicit_auth_refused")
        .expect("the implicit refusal");
    assert_eq!(refused["outcome"], "denied");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["details"]["auth_method"], "implicit");
    assert!(refused["workspace_id"].is_string());

    // The API key login names the service account and its key; the client names what it
    // handed out and until when.
    let by_key = all
        .iter()
        .find(|r| r["action"] == "auth.login" && r["actor"]["kind"] == "service_account")
        .expect("the API key login");
    assert_eq!(
        by_key["actor"]["id"],
        robot_key["body"]["service_account_id"]
    );
    assert_eq!(by_key["actor"]["api_key_id"], robot_key["id"]);
    assert_eq!(by_key["details"]["method"], "api_key");
    let issued = all
        .iter()
        .find(|r| r["action"] == "connector.client_issued")
        .unwrap();
    assert_eq!(issued["details"]["resource_type"], "kubernetes-cluster");
    assert_eq!(issued["details"]["resource_id"], "c1");
    assert!(issued["details"]["expires_at"].is_string(), "{issued}");
    assert!(issued["request_id"].is_string());
    assert_eq!(issued["actor"]["name"], "default");

    // No record holds a secret value, password, API key or token: not in the API's answer, and
    // not in the database.
    let forbidden = [
        DEFAULT_CLIENT_SECRET,
        "hunter2-secret",
        "hunter3-secret",
        ADMIN_PASSWORD,
        "not-the-password",
        &api_key,
        &cluster_token,
        &admin,
    ];
    let listed = serde_json::to_string(&all).unwrap();
    let stored = app.db.audit_rows_as_text().await;
    for value in forbidden {
        assert!(!listed.contains(value), "a secret is in the audit log");
        assert!(!stored.contains(value), "a secret is in the audit table");
    }

    // Every record went to the JSON lines file too, chained.
    let lines: Vec<Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let in_file: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    for record in &all {
        assert!(
            in_file.contains(record["id"].as_str().unwrap()),
            "{record} is in the file"
        );
    }
    assert!(lines.iter().all(|l| l["chain"]["hash"].is_string()));

    let (verified, report, stderr) = audit_cli(&app, &["verify"]);
    assert!(verified, "{stderr}");
    assert!(report["checked"].as_u64().unwrap() >= all.len() as u64);
    app.stop().await;
}

async fn a_record_that_cannot_be_written_fails_the_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let kept = app
        .create_secret(&app.admin, "kept", false, json!({"password": "kept-value"}))
        .await;
    app.db.refuse_audit_records().await;

    // A create fails, and leaves nothing behind.
    let create = app
        .post(
            "/api/v1/secrets",
            &app.admin,
            json!({"name": "lost", "values": {"k": "lost-value"}}),
        )
        .await;
    assert!(create.status.is_server_error(), "{}", create.body);
    let listed = app.get("/api/v1/secrets?name=lost", &app.admin).await.ok();
    assert_eq!(listed["total"], 0);

    // A read fails closed: no value leaves.
    let read = app
        .get(&format!("/api/v1/secrets/{}", id_of(&kept)), &app.admin)
        .await;
    assert!(read.status.is_server_error());
    assert!(!read.body.to_string().contains("kept-value"));

    // A delete fails, and the secret is still there.
    let delete = app
        .delete(&format!("/api/v1/secrets/{}", id_of(&kept)), &app.admin)
        .await;
    assert!(delete.status.is_server_error());
    let listed = app.get("/api/v1/secrets?name=kept", &app.admin).await.ok();
    assert_eq!(listed["total"], 1);

    // A login hands out no token.
    let login = app.try_login("default", ADMIN_PASSWORD).await;
    assert!(login.status.is_server_error());
    assert!(login.body.get("access_token").is_none());
    app.stop().await;
}

async fn verify_names_the_altered_record_and_purge_keeps_the_rest_verifiable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["a", "b", "c", "d", "e"] {
        app.create_secret(&app.admin, name, false, json!({"k": "v"}))
            .await;
    }
    let all = records(&app, "").await;
    assert!(all.len() >= 6, "{all:?}");
    let (ok, report, stderr) = audit_cli(&app, &["verify"]);
    assert!(ok, "{stderr}");
    assert_eq!(report["first_mismatch"], Value::Null);

    // Purging before the third secret's creation removes what came before it.
    let third = all
        .iter()
        .find(|r| r["action"] == "secret.created" && r["target"]["name"] == "c")
        .unwrap();
    let cut = third["created"].as_str().unwrap();
    let (ok, purged, stderr) = audit_cli(&app, &["purge", "--before", cut]);
    assert!(ok, "{stderr}");
    let removed = purged["removed"].as_u64().unwrap();
    assert!(removed >= 3, "{purged}");
    let left = records(&app, "").await;
    assert!(
        left.iter()
            .all(|r| r["created"].as_str().unwrap() >= cut || r["action"] == "audit.purged")
    );
    let purge_record = left
        .iter()
        .find(|r| r["action"] == "audit.purged")
        .expect("the purge is recorded");
    assert_eq!(purge_record["actor"]["kind"], "operator");
    assert_eq!(purge_record["details"]["removed"], removed);
    let (ok, _, stderr) = audit_cli(&app, &["verify"]);
    assert!(ok, "after the purge: {stderr}");

    // A record altered behind the server's back is named.
    let altered = left
        .iter()
        .find(|r| r["action"] == "secret.created" && r["target"]["name"] == "d")
        .unwrap();
    let seq = altered["chain"]["seq"].as_i64().unwrap();
    let altered_id: uuid::Uuid = altered["id"].as_str().unwrap().parse().unwrap();
    let record = format!("id = {}", app.db.uuid_literal(altered_id));
    app.db
        .execute(&format!(
            "UPDATE audit_events SET actor_name = 'mallory' WHERE {record}"
        ))
        .await;
    let (ok, report, stderr) = audit_cli(&app, &["verify"]);
    assert!(!ok);
    assert_eq!(report["first_mismatch"]["chain_seq"], seq);
    assert_eq!(report["first_mismatch"]["id"], altered["id"]);
    assert!(
        stderr.contains(&format!("record {seq}"))
            && stderr.contains(altered["id"].as_str().unwrap()),
        "{stderr}"
    );

    // So is a record removed from the middle.
    app.db
        .execute(&format!(
            "UPDATE audit_events SET actor_name = 'default' WHERE {record}"
        ))
        .await;
    assert!(audit_cli(&app, &["verify"]).0);
    app.db
        .execute(&format!("DELETE FROM audit_events WHERE {record}"))
        .await;
    let (ok, report, _) = audit_cli(&app, &["verify"]);
    assert!(!ok);
    assert_eq!(report["first_mismatch"]["chain_seq"], seq + 1);
    app.stop().await;
}

async fn only_administrators_read_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("team").await;
    let lead = app.create_user("lead", "team", "admin").await;
    let member = app.create_user("member", "team", "member").await;
    let outsider = app.create_user("outsider", "default", "admin").await;
    app.create_secret(&lead, "team-secret", false, json!({"k": "v"}))
        .await;
    app.create_secret(&app.admin, "default-secret", false, json!({"k": "v"}))
        .await;
    app.audit.chain_now().await.unwrap();

    // The server administrator sees every record, of every workspace and of none.
    let everything = records(&app, "").await;
    let names: BTreeSet<&str> = everything
        .iter()
        .filter_map(|r| r["target"]["name"].as_str())
        .collect();
    assert!(names.contains("team-secret") && names.contains("default-secret"));
    assert!(everything.iter().any(|r| r["workspace_id"].is_null()));

    // A workspace administrator sees their workspace's records only.
    let team = app.get("/api/v1/audit_events?size=1000", &lead).await.ok();
    let items = team["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let team_id = app.get("/api/v1/workspaces/team", &app.admin).await.ok()["id"].clone();
    assert!(items.iter().all(|r| r["workspace_id"] == team_id), "{team}");
    assert!(items.iter().any(|r| r["target"]["name"] == "team-secret"));

    // Filters work as in every list: by action prefix, actor and outcome.
    let secrets = app
        .get(
            "/api/v1/audit_events?action=startswith:secret.&actor=lead&outcome=success",
            &lead,
        )
        .await
        .ok();
    assert_eq!(secrets["total"], 1, "{secrets}");

    // Members, and administrators of other workspaces who are not server administrators, get
    // 403 or see nothing of this workspace.
    let refused = app.get("/api/v1/audit_events", &member).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error().0, "IllegalOperationError");
    let other = app
        .get("/api/v1/audit_events?size=1000", &outsider)
        .await
        .ok();
    assert!(
        other["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["workspace_id"] != team_id)
    );
    let anonymous = app
        .send(app.client.get(app.url("/api/v1/audit_events")))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_second_process_continues_the_same_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = app
        .spawn_peer(|config| config.storage.encryption_key = Some(test_master_key()))
        .await;
    // Writes through both processes at once, each chaining on its own.
    let names: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    let writes = names.iter().enumerate().map(|(i, name)| {
        let server = if i % 2 == 0 { &app } else { &peer };
        server.create_secret(&server.admin, name, false, json!({"k": "v"}))
    });
    futures::future::join_all(writes).await;
    let (a, b) = tokio::join!(app.audit.chain_now(), peer.audit.chain_now());
    a.unwrap();
    b.unwrap();
    let all = records(&app, "").await;
    let mut seqs: Vec<i64> = all
        .iter()
        .map(|r| r["chain"]["seq"].as_i64().expect("chained"))
        .collect();
    seqs.sort();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "one gapless chain");
    let (ok, _, stderr) = audit_cli(&app, &["verify"]);
    assert!(ok, "{stderr}");
    peer.stop().await;
    app.stop().await;
}

/// Whoever links a transaction's audit records hears of them once it commits: not before, and
/// not at all should it roll back. On PostgreSQL that is the process's chainer, told that
/// records are queued for it; on SQLite, where the transaction links its records itself, the
/// listener that appends them to the JSON lines file. A batch's records reach the chainer the
/// same way, and SQLite's listener as the writer commits them.
async fn records_are_told_of_when_their_transaction_commits(backend: Backend) {
    use std::future::Future;
    use std::sync::{Arc, Mutex};

    use connector_hub::store::{Store, audit};

    let app = TestApp::spawn(backend).await;
    // A process of its own on the same database, with no chainer or listener of its own.
    let storage = &app.config.storage;
    let store = Store::open(storage.database_url.as_deref(), &storage.data_dir, 2)
        .await
        .unwrap();
    let queued = store.records_queued();
    let linked = Arc::new(Mutex::new(Vec::<uuid::Uuid>::new()));
    let listener = linked.clone();
    store.when_writer_chains(move |chained| {
        let mut linked = listener.lock().unwrap();
        linked.extend(chained.iter().map(|c| c.event.id));
    });
    let record = |at: u32| {
        AuditEvent::new(
            Actor::anonymous("alice"),
            action::LOGIN_FAILED,
            Outcome::Denied,
            format!("2026-12-01T10:00:0{at}Z").parse().unwrap(),
        )
    };
    let is_told = |told: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>| {
        let waker = futures::task::noop_waker();
        told.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_ready()
    };
    let queues = matches!(backend, Backend::Postgres);
    let heard = || linked.lock().unwrap().clone();

    let told = queued.notified();
    tokio::pin!(told);
    told.as_mut().enable();
    let rolled_back = record(1);
    let mut tx = store.begin().await.unwrap();
    audit::append(&mut tx, &rolled_back).await.unwrap();
    drop(tx);
    let committed = record(2);
    let mut tx = store.begin().await.unwrap();
    audit::append(&mut tx, &committed).await.unwrap();
    assert!(!is_told(&mut told), "told before the commit");
    assert!(heard().is_empty(), "heard of before the commit");
    tx.commit().await.unwrap();
    assert_eq!(
        is_told(&mut told),
        queues,
        "the chainer is told of queued records"
    );
    match queues {
        true => assert!(heard().is_empty()),
        false => assert_eq!(
            heard(),
            [committed.id],
            "only the committed record is heard of"
        ),
    }

    let told = queued.notified();
    tokio::pin!(told);
    told.as_mut().enable();
    let written = record(3);
    let mut batch = store.batch();
    audit::push(&mut batch, &written);
    store.write(batch).await.unwrap();
    assert_eq!(
        is_told(&mut told),
        queues,
        "told of a batch's queued records"
    );
    if !queues {
        assert_eq!(heard(), [committed.id, written.id]);
    }
    store.close().await;
    app.stop().await;
}

/// A log that release 0013's schema held (each record's place in the chain in its own row)
/// keeps its chain once the places move to their own table: the chained records keep their
/// places and hashes, and the record still waiting is chained after them.
async fn a_log_kept_before_the_links_table_goes_on_verifiable(backend: Backend) {
    let events: Vec<AuditEvent> = (0..4)
        .map(|i| {
            let at = format!("2026-12-01T10:00:0{i}Z").parse().unwrap();
            AuditEvent::new(
                Actor::anonymous("alice"),
                action::LOGIN_FAILED,
                Outcome::Denied,
                at,
            )
            .with_status(401)
        })
        .collect();
    let mut hashes = Vec::new();
    let app = TestApp::spawn_after(backend, async |db| {
        db.migrate_to(13).await;
        let mut hash = GENESIS_HASH.to_owned();
        for (i, event) in events.iter().enumerate() {
            let seq = i as i64 + 1;
            let link = match seq {
                4 => "NULL, NULL, NULL".to_owned(),
                _ => {
                    let next = event.chain_hash(seq, &hash);
                    let link = format!("{seq}, '{hash}', '{next}'");
                    hashes.push(next.clone());
                    hash = next;
                    link
                }
            };
            db.execute(&format!(
                "INSERT INTO audit_events (id, created, actor_name, actor_kind, action, \
                 outcome, status, details, chain_seq, prev_hash, hash) VALUES \
                 ({}, '2026-12-01T10:00:0{i}+00:00', 'alice', 'anonymous', \
                 'auth.login_failed', 'denied', 401, '{{}}', {link})",
                db.uuid_literal(event.id)
            ))
            .await;
        }
        db.execute(&format!(
            "UPDATE audit_chain SET last_seq = 3, last_hash = '{hash}' WHERE id = 1"
        ))
        .await;
    })
    .await;

    let all = records(&app, "").await;
    let listed = |event: &AuditEvent| {
        all.iter()
            .find(|r| r["id"] == event.id.to_string())
            .unwrap_or_else(|| panic!("{} is listed: {all:#?}", event.id))
    };
    for (i, event) in events[..3].iter().enumerate() {
        let record = listed(event);
        assert_eq!(record["chain"]["seq"], i as i64 + 1);
        assert_eq!(record["chain"]["hash"], hashes[i]);
    }
    let waiting = listed(&events[3])["chain"]["seq"].as_i64().unwrap();
    assert!(waiting > 3, "chained after the others: {waiting}");

    let (ok, report, stderr) = audit_cli(&app, &["verify"]);
    assert!(ok, "{stderr}");
    assert_eq!(report["checked"], all.len() as u64, "{report}");
    assert_eq!(report["first_mismatch"], Value::Null);
    app.stop().await;
}

/// On SQLite the writer chains the records of the writes it commits, in the same transaction:
/// concurrent creates are linked without gaps, and each is chained (and in the JSON lines file)
/// before its response is sent, with no chainer run.
#[tokio::test]
async fn sqlite_chains_records_as_it_commits_them() {
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let log_path = log_file.path().to_owned();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.storage.audit_log_file = Some(log_path.clone());
    })
    .await;
    let creates = (0..12).map(|i| register(&app, service_principal(&format!("az{i}"), "s")));
    let ids: BTreeSet<String> = futures::future::join_all(creates)
        .await
        .into_iter()
        .collect();

    let page = app
        .get(
            "/api/v1/audit_events?size=1000&action=connector.created",
            &app.admin,
        )
        .await
        .ok();
    let created: Vec<&Value> = page["items"].as_array().unwrap().iter().collect();
    let targets: BTreeSet<String> = created
        .iter()
        .map(|r| r["target"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets, ids);
    let mut seqs: Vec<i64> = created
        .iter()
        .map(|r| r["chain"]["seq"].as_i64().expect("chained as it committed"))
        .collect();
    seqs.sort();
    assert_eq!(seqs.len(), 12);
    assert_eq!(seqs[11] - seqs[0], 11, "linked without gaps: {seqs:?}");

    let in_file = std::fs::read_to_string(&log_path).unwrap();
    for record in &created {
        assert!(in_file.contains(record["id"].as_str().unwrap()));
    }
    let (ok, _, stderr) = audit_cli(&app, &["verify"]);
    assert!(ok, "{stderr}");
    app.stop().await;
}

on_both_backends!(
    a_log_kept_before_the_links_table_goes_on_verifiable,
    commands_append_their_records_to_the_audit_log_file,
    each_listed_action_writes_its_record,
    a_record_that_cannot_be_written_fails_the_request,
    verify_names_the_altered_record_and_purge_keeps_the_rest_verifiable,
    only_administrators_read_the_log,
    a_second_process_continues_the_same_chain,
    records_are_told_of_when_their_transaction_commits,
);
