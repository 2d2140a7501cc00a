//! Geography in the request path: the site map decides the data subject's
//! country for LAN clients, a trusted app's header wins only for that app,
//! gateway addresses are attested, and conversations stay pinned.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use residency_agent::config::{AgentConfig, GatewayConfig};
use residency_agent::demo::mock_provider::{MockOptions, MockProvider};
use residency_agent::keys;
use residency_agent::policy::App;
use residency_agent::{AgentHandle, GatewayHandle};
use residency_proto::RegionId;
use residency_tests::*;

/// US data subjects' requests are refused; everything else follows the tier.
fn policy(app_key: &str) -> String {
    format!(
        r#"
name = "subjects"
[[app]]
name = "crm"
api_key_sha256 = ["{}"]
trusted_headers = ["x-residency-subject-country"]
[[rule]]
name = "no-us-subjects"
[rule.match]
subject_country = ["US"]
[rule.deny]
reason = "US data subjects are served by another system"
[[rule]]
name = "restricted-in-india"
[rule.match]
tier = ["restricted"]
[rule.allow]
jurisdictions = ["IN"]
[[rule]]
name = "rest-anywhere"
[rule.allow]
jurisdictions = ["*"]
"#,
        App::key_hash_hex(app_key)
    )
}

async fn fleet_with(site_country: &str, key: &str) -> (Fleet, tempfile::TempDir) {
    use residency_agent::policy::sign::{generate_keypair, sign};
    let keydir = tempfile::tempdir().unwrap();
    let (secret, public) = generate_keypair().unwrap();
    let pubfile = keydir.path().join("p.pub");
    std::fs::write(&pubfile, public.to_pem()).unwrap();
    let bundle = sign(&policy(key), 1, 1, &secret).unwrap().encode();
    let extra = format!(
        "[geo]\nsite_country = \"IN\"\n[[geo.site]]\nname = \"branch-lan\"\ncidrs = [\"127.0.0.0/8\"]\ncountry = \"{site_country}\"\n[policy]\ntrusted_keys = [\"{}\"]\n",
        pubfile.display()
    );
    let fleet = Fleet::start(FleetOptions {
        agent_extra: extra,
        ..FleetOptions::default()
    })
    .await;
    fleet.agent.policy().install(&bundle).unwrap();
    (fleet, keydir)
}

#[tokio::test]
async fn the_site_map_decides_the_subjects_country_for_lan_clients() {
    let (us, _k1) = fleet_with("US", "sk-crm").await;
    let a = send(
        "POST",
        &format!("{}/chat/completions", us.base()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert!(a.body.contains("no-us-subjects"));

    let (india, _k2) = fleet_with("IN", "sk-crm").await;
    let a = send(
        "POST",
        &format!("{}/chat/completions", india.base()),
        &chat("hello", false),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-rule"), "rest-anywhere");
}

#[tokio::test]
async fn a_subject_country_header_counts_only_from_the_app_trusted_for_it() {
    let (fleet, _k) = fleet_with("IN", "sk-crm").await;
    let url = format!("{}/chat/completions", fleet.base());
    let body = chat("hello", false);
    // The trusted app says the subject is in the US: refused.
    let a = send_with(
        "POST",
        &url,
        &body,
        &[
            ("authorization", "Bearer sk-crm"),
            ("x-residency-subject-country", "US"),
        ],
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    // Anyone else saying so is ignored: the site map (IN) stands.
    let a = send_with(
        "POST",
        &url,
        &body,
        &[
            ("authorization", "Bearer sk-other"),
            ("x-residency-subject-country", "US"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn restricted_conversations_stay_pinned_to_india() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let url = format!("{}/chat/completions", fleet.base());
    let session = [("x-residency-session", "conv-42")];
    let a = send_with(
        "POST",
        &url,
        &chat("Aadhaar 2345 6789 0124 please", false),
        &session,
    )
    .await;
    assert!(a.header("x-residency-region").starts_with("aws:ap-south-"));
    // A later message that alone looks public stays in India.
    let a = send_with("POST", &url, &chat("and summarise it", false), &session).await;
    assert_eq!(a.header("x-residency-tier"), "public");
    assert!(
        a.header("x-residency-region").starts_with("aws:ap-south-"),
        "pinned conversation went to {}",
        a.header("x-residency-region")
    );
    assert!(a.header("x-residency-rule").contains("pinned to IN"));
    // Another conversation is not affected.
    let a = send_with(
        "POST",
        &url,
        &chat("and summarise it", false),
        &[("x-residency-session", "conv-43")],
    )
    .await;
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    // API key plus `user` works as the key too.
    let auth = [("authorization", "Bearer sk-app")];
    let first = serde_json::json!({"model":"m","user":"asha","messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}).to_string();
    let later = serde_json::json!({"model":"m","user":"asha","messages":[{"role":"user","content":"thanks"}]}).to_string();
    let other = serde_json::json!({"model":"m","user":"ravi","messages":[{"role":"user","content":"thanks"}]}).to_string();
    send_with("POST", &url, &first, &auth).await;
    let a = send_with("POST", &url, &later, &auth).await;
    assert!(a.header("x-residency-region").starts_with("aws:ap-south-"));
    let a = send_with("POST", &url, &other, &auth).await;
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
}

#[tokio::test]
async fn enforce_mode_never_uses_a_gateway_whose_address_locates_abroad() {
    let dir = tempfile::tempdir().unwrap();
    gen_keys(dir.path());
    let mut blocks = String::new();
    let mut providers = Vec::new();
    let mut gateways = Vec::new();
    // Mumbai's gateway answers on 127.0.0.2, which the site map puts in the US.
    for (region, ip) in [
        ("aws:ap-south-1", "127.0.0.2"),
        ("aws:ap-south-2", "127.0.0.1"),
    ] {
        let p = MockProvider::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
            .await
            .unwrap();
        let stem = keys::gateway_stem(&RegionId::new(region).unwrap());
        let cfg =
            write_gateway_config(dir.path(), region, &p.base_url(), &format!("{ip}:0"), &stem);
        let gw = GatewayHandle::start(GatewayConfig::load(&cfg).unwrap())
            .await
            .unwrap();
        blocks.push_str(&gateway_block(region, gw.local_addr()));
        providers.push(p);
        gateways.push(gw);
    }
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        agent_config_text(
            "aws:ap-south-1",
            &blocks,
            "[geo]\ngateway_attestation = \"enforce\"\n[[geo.site]]\nname = \"lan\"\ncidrs = [\"127.0.0.0/8\"]\ncountry = \"IN\"\n[[geo.site]]\nname = \"odd\"\ncidrs = [\"127.0.0.2/32\"]\ncountry = \"US\"\n",
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let up: Vec<String> = agent
        .pool()
        .links()
        .iter()
        .filter(|l| l.is_up())
        .map(|l| l.region.to_string())
        .collect();
    assert_eq!(up, vec!["aws:ap-south-2".to_owned()]);
    for _ in 0..5 {
        let a = send(
            "POST",
            &format!("{}/chat/completions", agent.base_url()),
            &chat("Aadhaar 2345 6789 0124", false),
        )
        .await;
        assert_eq!(a.header("x-residency-region"), "aws:ap-south-2");
    }
    assert!(providers[0].received().is_empty());
}
