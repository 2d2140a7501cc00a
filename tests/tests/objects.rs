//! Stored objects live in the region that created them: a request that
//! names one goes there, or is refused; the whole `/v1/` surface is
//! forwarded under the same rules.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use residency_tests::*;

const AADHAAR: &str = "2345 6789 0124";

fn responses_body(input: &str, previous: Option<&str>) -> String {
    let mut v = serde_json::json!({"model": "mock-gpt", "input": input});
    if let Some(p) = previous {
        v["previous_response_id"] = p.into();
    }
    v.to_string()
}

#[tokio::test]
async fn a_follow_up_goes_where_its_stored_response_lives_even_when_public() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/responses", fleet.base());
    let first = send(
        "POST",
        &url,
        &responses_body(&format!("Customer Aadhaar {AADHAAR}"), None),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let home = first.header("x-residency-region").to_owned();
    assert!(home.starts_with("aws:ap-south-"), "{home}");
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let follow = send(
        "POST",
        &url,
        &responses_body("what is the weather", Some(&id)),
    )
    .await;
    assert_eq!(follow.status, 200, "{}", follow.body);
    // Its own text is public, but it continues a response that holds
    // restricted data: it is decided as restricted.
    assert_eq!(follow.header("x-residency-tier"), "restricted");
    assert_eq!(follow.header("x-residency-region"), home);
    assert!(
        follow
            .header("x-residency-rule")
            .contains(&format!("object {id} lives in {home}")),
        "{}",
        follow.header("x-residency-rule")
    );
    // Reading, listing items of and deleting the object go there too.
    for (method, path) in [
        ("GET", format!("/responses/{id}")),
        ("GET", format!("/responses/{id}/input_items/")),
        ("DELETE", format!("/responses/{id}")),
    ] {
        let a = send(method, &format!("{}{path}", fleet.base()), "").await;
        assert_eq!(
            a.header("x-residency-region"),
            home,
            "{method} {path}: {}",
            a.body
        );
    }
    // Public on its own, the same input goes to the default region.
    let alone = send("POST", &url, &responses_body("what is the weather", None)).await;
    assert_eq!(alone.header("x-residency-region"), "aws:us-east-1");
}

#[tokio::test]
async fn an_object_where_the_request_may_not_go_is_refused_with_451() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/responses", fleet.base());
    let first = send("POST", &url, &responses_body("hello", None)).await;
    assert_eq!(first.header("x-residency-region"), "aws:us-east-1");
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let virginia_before = fleet.provider("aws:us-east-1").received_total();
    // Restricted data continuing a conversation held in N. Virginia: it may
    // not go there, and it is not sent anywhere else.
    let a = send(
        "POST",
        &url,
        &responses_body(&format!("Aadhaar {AADHAAR}"), Some(&id)),
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "object_region_not_allowed");
    let msg = a.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains(&id) && msg.contains("aws:us-east-1"), "{msg}");
    assert_eq!(a.header("x-should-retry"), "false");
    assert_eq!(a.header("x-residency-tier"), "restricted");
    assert!(!a.header("x-residency-rule").is_empty());
    assert_eq!(
        fleet.provider("aws:us-east-1").received_total(),
        virginia_before
    );
    for r in ["aws:ap-south-1", "aws:ap-south-2"] {
        assert_eq!(fleet.provider(r).received_total(), 0, "{r}");
    }
}

#[tokio::test]
async fn a_damaged_map_entry_is_refused_not_guessed() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/responses", fleet.base());
    let first = send("POST", &url, &responses_body("hello", None)).await;
    let id = first.json()["id"].as_str().unwrap().to_owned();
    fleet.agent.objects().damage(&id);
    let before: usize = ["aws:ap-south-1", "aws:ap-south-2", "aws:us-east-1"]
        .iter()
        .map(|r| fleet.provider(r).received_total())
        .sum();
    let a = send("POST", &url, &responses_body("again", Some(&id))).await;
    assert_eq!(a.status, 500, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "object_map_damaged");
    assert_eq!(a.header("x-should-retry"), "false");
    let after: usize = ["aws:ap-south-1", "aws:ap-south-2", "aws:us-east-1"]
        .iter()
        .map(|r| fleet.provider(r).received_total())
        .sum();
    assert_eq!(before, after, "a request naming a damaged entry went out");
}

#[tokio::test]
async fn the_object_map_survives_an_agent_restart() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let log = fleet.dir.path().join("agent.log");
    let agent = spawn_agent(&fleet, "", &log).await;
    let url = format!("{}/responses", agent.base);
    let first = send(
        "POST",
        &url,
        &responses_body(&format!("Aadhaar {AADHAAR}"), None),
    )
    .await;
    let home = first.header("x-residency-region").to_owned();
    assert!(home.starts_with("aws:ap-south-"));
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let AgentProc {
        proc: mut old,
        base,
        config,
        socket,
        ..
    } = agent;
    old.0.kill().unwrap();
    old.0.wait().unwrap();
    let _restarted = Proc(
        std::process::Command::new(agent_bin())
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Ready once its gateway links are up.
    wait_gateways_up(&socket, Duration::from_secs(30)).await;
    let follow = send(
        "POST",
        &format!("{base}/responses"),
        &responses_body("public follow-up", Some(&id)),
    )
    .await;
    assert_eq!(follow.status, 200, "{}", follow.body);
    assert_eq!(follow.header("x-residency-region"), home);
}

#[tokio::test]
async fn every_v1_path_is_forwarded_under_the_same_rules() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let base = fleet.base();
    // Endpoints beyond chat: forwarded under the same rules (the mock's own
    // answer comes back, with the agent's headers).
    for (method, path, body) in [
        ("GET", "/files", ""),
        ("GET", "/files/", ""),
        ("POST", "/moderations", r#"{"input":"hello"}"#),
        (
            "POST",
            "/messages",
            r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        ("GET", "/batches?limit=2", ""),
        ("DELETE", "/vector_stores/vs_unknown", ""),
    ] {
        let a = send(method, &format!("{base}{path}"), body).await;
        assert_eq!(
            a.header("x-residency-decision"),
            "allow",
            "{method} {path}: {}",
            a.body
        );
        assert_eq!(
            a.header("x-residency-region"),
            "aws:us-east-1",
            "{method} {path}"
        );
    }
    // Restricted data in a new endpoint's body is judged like anywhere else.
    let a = send(
        "POST",
        &format!("{base}/moderations"),
        &format!(r#"{{"input":"Aadhaar {AADHAAR}"}}"#),
    )
    .await;
    assert_eq!(a.header("x-residency-tier"), "restricted");
    assert!(a.header("x-residency-region").starts_with("aws:ap-south-"));
    // Methods the API does not use are 405, paths outside /v1/ 404, both
    // as JSON.
    let a = send("PUT", &format!("{base}/files"), "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["error"]["code"], "method_not_allowed");
    let a = send(
        "GET",
        &format!("{}/v2/files", base.trim_end_matches("/v1")),
        "",
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn an_api_key_alone_no_longer_pins_a_conversation_unless_asked() {
    let auth = [("authorization", "Bearer sk-app")];
    let restricted = chat(&format!("Aadhaar {AADHAAR}"), false);
    let public = chat("thanks", false);
    for (extra, pinned) in [("", false), ("[routing]\npin_by_api_key = true\n", true)] {
        let fleet = Fleet::start(FleetOptions {
            agent_extra: extra.to_owned(),
            ..FleetOptions::default()
        })
        .await;
        let url = format!("{}/chat/completions", fleet.base());
        let a = send_with("POST", &url, &restricted, &auth).await;
        assert!(a.header("x-residency-region").starts_with("aws:ap-south-"));
        let a = send_with("POST", &url, &public, &auth).await;
        assert_eq!(
            a.header("x-residency-region").starts_with("aws:ap-south-"),
            pinned,
            "{extra:?}: {}",
            a.header("x-residency-region")
        );
    }
}

#[tokio::test]
async fn browsers_from_allowed_origins_get_cors_answers_and_others_do_not() {
    let fleet = Fleet::start(FleetOptions {
        agent_extra: "[ingress]\ncors_origins = [\"https://app.bank.example\"]\n".into(),
        ..FleetOptions::default()
    })
    .await;
    let url = format!("{}/chat/completions", fleet.base());
    let pre = send_with(
        "OPTIONS",
        &url,
        "",
        &[
            ("origin", "https://app.bank.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        "https://app.bank.example"
    );
    assert!(pre.header("access-control-allow-methods").contains("POST"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        "authorization, content-type"
    );
    let a = send_with(
        "POST",
        &url,
        &chat("hello", false),
        &[("origin", "https://app.bank.example")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("access-control-allow-origin"),
        "https://app.bank.example"
    );
    assert!(a
        .header("access-control-expose-headers")
        .contains("x-residency-region"));
    // Another origin gets neither.
    let pre = send_with(
        "OPTIONS",
        &url,
        "",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(pre.status, 405);
    assert_eq!(pre.header("access-control-allow-origin"), "");
    let a = send_with(
        "POST",
        &url,
        &chat("hello", false),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(a.header("access-control-allow-origin"), "");
}

#[tokio::test]
async fn a_gateway_refuses_a_request_naming_an_object_held_elsewhere() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let body = responses_body("hello", Some("resp_abc"));
    let frame = raw_request_with(
        &fleet,
        "aws:ap-south-1",
        "aws:ap-south-1",
        "/v1/responses",
        residency_proto::Tier::Public,
        vec![(
            "x-residency-objects".into(),
            "resp_abc@aws:us-east-1".into(),
        )],
        body.as_bytes(),
    )
    .await;
    match frame {
        residency_proto::Frame::Error(e) => {
            assert_eq!(e.code, residency_proto::ErrorCode::Misrouted);
            assert!(e.message.contains("resp_abc"), "{}", e.message);
        }
        other => panic!("served: {other:?}"),
    }
    assert_eq!(fleet.provider("aws:ap-south-1").received_total(), 0);
    // Named as held here, it is served (the provider's allowlist of request
    // headers never includes the agent's own).
    let frame = raw_request_with(
        &fleet,
        "aws:ap-south-1",
        "aws:ap-south-1",
        "/v1/chat/completions",
        residency_proto::Tier::Public,
        vec![(
            "x-residency-objects".into(),
            "resp_abc@aws:ap-south-1".into(),
        )],
        chat("hello", false).as_bytes(),
    )
    .await;
    assert!(
        matches!(frame, residency_proto::Frame::ResponseHead(_)),
        "{frame:?}"
    );
    assert_eq!(fleet.provider("aws:ap-south-1").received_total(), 1);
    assert!(!residency_agent::gateway::upstream::FORWARD_REQUEST_HEADERS
        .contains(&"x-residency-objects"));
}
