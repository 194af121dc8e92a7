use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp, id_of, on_both_backends};

async fn non_members_see_no_trace_of_a_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let red = app.create_workspace("red").await;
    app.create_workspace("blue").await;
    let alice = app.create_user("alice", "red", "admin").await;
    let bob = app.create_user("bob", "blue", "member").await;
    let secret = app
        .create_secret(&alice, "red-db", false, json!({"password": "red-pw"}))
        .await;
    let secret_id = id_of(&secret);
    let red_id = id_of(&red);

    let listed = app.get("/api/v1/workspaces", &bob).await.ok();
    let names: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blue"]);

    for path in [
        "/api/v1/workspaces/red".to_owned(),
        format!("/api/v1/workspaces/{red_id}"),
        "/api/v1/workspaces/red/members".to_owned(),
        "/api/v1/secrets?project_name_or_id=red".to_owned(),
        format!("/api/v1/secrets?workspace={red_id}"),
        format!("/api/v1/secrets/{secret_id}?project_name_or_id=red"),
        "/api/v1/workspaces/red/secrets".to_owned(),
        format!("/api/v1/workspaces/red/secrets/{secret_id}"),
        // In bob's own workspace the id simply does not exist.
        format!("/api/v1/secrets/{secret_id}"),
    ] {
        let reply = app.get(&path, &bob).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.error().0, "KeyError");
        assert!(!reply.body.to_string().contains("red-db"));
    }
    let write = app
        .post(
            "/api/v1/workspaces/red/secrets",
            &bob,
            json!({"name": "x", "values": {}}),
        )
        .await;
    assert_eq!(write.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&format!("/api/v1/secrets/{secret_id}"), &bob)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The same requests work for a member.
    let mine = app
        .get(
            &format!("/api/v1/workspaces/red/secrets/{secret_id}"),
            &alice,
        )
        .await
        .ok();
    assert_eq!(mine["body"]["values"]["password"], "red-pw");
    app.stop().await;
}

async fn membership_decides_the_default_and_named_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("red").await;
    app.create_workspace("blue").await;
    let alice = app.create_user("alice", "red", "member").await;
    app.create_secret(&alice, "in-red", false, json!({})).await;
    // Not yet a member of blue.
    assert_eq!(
        app.get("/api/v1/secrets?project_name_or_id=blue", &alice)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.add_member("blue", "alice", "member").await;
    let blue = app
        .get("/api/v1/secrets?project_name_or_id=blue", &alice)
        .await
        .ok();
    assert_eq!(blue["total"], 0);
    let red = app.get("/api/v1/secrets", &alice).await.ok();
    assert_eq!(red["items"][0]["name"], "in-red");
    let members = app
        .get("/api/v1/workspaces/blue/members", &alice)
        .await
        .ok();
    assert_eq!(members[0]["user_name"], "alice");
    assert_eq!(members[0]["role"], "member");
    app.delete("/api/v1/workspaces/blue/members/alice", &app.admin)
        .await
        .ok();
    assert_eq!(
        app.get("/api/v1/secrets?project_name_or_id=blue", &alice)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn workspaces_are_created_renamed_and_deleted_by_admins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/api/v1/workspaces",
            &app.admin,
            json!({"name": "ml", "display_name": "ML team", "description": "d"}),
        )
        .await
        .ok();
    assert_eq!(created["body"]["display_name"], "ML team");
    assert_eq!(created["metadata"]["description"], "d");
    let clash = app
        .post("/api/v1/workspaces", &app.admin, json!({"name": "ml"}))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(clash.error().0, "EntityExistsError");
    // A name that reads as another workspace's id would make references ambiguous.
    let id_like = json!({"name": created["id"]});
    let refused = app.post("/api/v1/workspaces", &app.admin, id_like).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.error().0, "ValueError");
    assert!(refused.error().1.contains("must not be a UUID"));
    app.put(
        "/api/v1/workspaces/ml",
        &app.admin,
        json!({"name": "ml-team"}),
    )
    .await
    .ok();
    assert_eq!(
        app.get("/api/v1/workspaces/ml-team", &app.admin).await.ok()["id"],
        created["id"]
    );
    app.add_member("ml-team", "default", "admin").await;
    app.post(
        "/api/v1/workspaces/ml-team/secrets",
        &app.admin,
        json!({"name": "s", "values": {"a": "b"}}),
    )
    .await
    .ok();
    // Its connectors go with it, through the triggers that track what lists show.
    app.post(
        "/api/v1/workspaces/ml-team/service_connectors",
        &app.admin,
        json!({
            "name": "c", "connector_type": "azure", "auth_method": "service-principal",
            "configuration": {
                "tenant_id": "2f7a1c3e-0000-4000-8000-000000000001",
                "client_id": "2f7a1c3e-0000-4000-8000-000000000002",
                "client_secret": "s",
            },
        }),
    )
    .await
    .ok();
    assert_eq!(app.db.row_count("service_connectors").await, 1);
    app.delete("/api/v1/workspaces/ml-team", &app.admin)
        .await
        .ok();
    assert_eq!(app.db.row_count("service_connectors").await, 0);
    assert_eq!(
        app.get("/api/v1/workspaces/ml-team", &app.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn list_filters_sorting_and_paging_follow_zenml(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        app.create_workspace(name).await;
    }
    let page = app
        .get(
            "/api/v1/workspaces?sort_by=asc:name&size=2&page=2",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(page["index"], 2);
    assert_eq!(page["max_size"], 2);
    assert_eq!(page["total"], 6);
    assert_eq!(page["total_pages"], 3);
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "delta"]);

    let names_of = |page: serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let filtered = app
        .get(
            "/api/v1/workspaces?name=contains:ta&sort_by=desc:name",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(names_of(filtered), ["delta", "beta"]);
    let either = app
        .get("/api/v1/workspaces?name=startswith:al&display_name=endswith:silon&logical_operator=or&sort_by=name", &app.admin)
        .await
        .ok();
    assert_eq!(names_of(either), ["alpha", "epsilon"]);
    let oneof = app
        .get(
            r#"/api/v1/workspaces?name=oneof:["beta","gamma"]&sort_by=name"#,
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(names_of(oneof), ["beta", "gamma"]);
    let not = app
        .get(
            "/api/v1/workspaces?name=notequals:default&size=10",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(not["total"], 5);
    let newer = app
        .get(
            "/api/v1/workspaces?created=gt:2000-01-01 00:00:00",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(newer["total"], 6);
    let none = app
        .get("/api/v1/workspaces?created=lt:2000-01-01", &app.admin)
        .await
        .ok();
    assert_eq!(
        (none["total"].as_i64(), none["total_pages"].as_i64()),
        (Some(0), Some(1))
    );
    let past_end = app
        .get("/api/v1/workspaces?page=4&size=2", &app.admin)
        .await;
    assert_eq!(past_end.status, StatusCode::BAD_REQUEST);
    assert!(past_end.error().1.contains("Invalid page 4"));
    // Wildcards in values are matched literally.
    let literal = app
        .get("/api/v1/workspaces?name=contains:%25", &app.admin)
        .await
        .ok();
    assert_eq!(literal["total"], 0);
    let hydrated = app
        .get("/api/v1/workspaces?hydrate=true&name=alpha", &app.admin)
        .await
        .ok();
    assert!(hydrated["items"][0]["metadata"].is_object());
    let dry = app
        .get("/api/v1/workspaces?hydrate=False&name=alpha", &app.admin)
        .await
        .ok();
    assert!(dry["items"][0]["metadata"].is_null());
    app.stop().await;
}

on_both_backends!(
    non_members_see_no_trace_of_a_workspace,
    membership_decides_the_default_and_named_workspace,
    workspaces_are_created_renamed_and_deleted_by_admins,
    list_filters_sorting_and_paging_follow_zenml,
    projects_and_default_stacks_serve_zenml_clients,
);

/// What ZenML clients look up at start-up: their projects (our workspaces) and a default stack.
async fn projects_and_default_stacks_serve_zenml_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("red").await;
    app.create_workspace("blue").await;
    let alice = app.create_user("alice", "red", "member").await;
    let bob = app.create_user("bob", "blue", "member").await;
    let projects = app
        .get(
            "/api/v1/projects?hydrate=False&sort_by=created&logical_operator=and&page=1&size=20",
            &alice,
        )
        .await
        .ok();
    assert_eq!(projects["total"], 1);
    assert_eq!(projects["items"][0]["name"], "red");
    assert_eq!(projects["items"][0]["body"]["display_name"], "red");
    assert_eq!(
        app.get("/api/v1/projects/red?hydrate=True", &alice)
            .await
            .ok()["name"],
        "red"
    );
    assert_eq!(
        app.get("/api/v1/projects/blue", &alice).await.status,
        StatusCode::NOT_FOUND
    );

    let stacks = app.get("/api/v1/stacks?hydrate=False&sort_by=created&logical_operator=and&page=1&size=20&name=default", &alice).await.ok();
    assert_eq!(stacks["total"], 1);
    let stack_id = stacks["items"][0]["id"].as_str().unwrap().to_owned();
    let none = app.get("/api/v1/stacks?name=other", &alice).await.ok();
    assert_eq!(none["total"], 0);
    let hydrated = app
        .get(&format!("/api/v1/stacks/{stack_id}?hydrate=True"), &alice)
        .await
        .ok();
    let components = &hydrated["metadata"]["components"];
    assert_eq!(components["orchestrator"][0]["name"], "default");
    assert_eq!(components["artifact_store"][0]["name"], "default");
    assert_eq!(hydrated["name"], "default");
    // Bob's default stack is another one, and alice's does not exist for him.
    let bobs = app.get("/api/v1/stacks", &bob).await.ok();
    assert_ne!(bobs["items"][0]["id"], stacks["items"][0]["id"]);
    assert_eq!(
        app.get(&format!("/api/v1/stacks/{stack_id}"), &bob)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}
