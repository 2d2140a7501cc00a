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
    fleet_with_geo(
        key,
        &format!(
            "[geo]\nsite_country = \"IN\"\n[[geo.site]]\nname = \"branch-lan\"\ncidrs = [\"127.0.0.0/8\"]\ncountry = \"{site_country}\"\n"
        ),
    )
    .await
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

#[tokio::test]
async fn geoip_decides_for_public_clients_behind_a_trusted_proxy() {
    // The branch's reverse proxy on loopback forwards for public clients; the
    // GeoIP fixture puts 49.36.0.0/14 in India and 8.8.8.0/24 in the US.
    let (fleet, _k) = fleet_with_geoip("trusted_proxies = [\"127.0.0.0/8\"]").await;
    let url = format!("{}/chat/completions", fleet.base());
    let body = chat("hello", false);
    let a = send_with("POST", &url, &body, &[("x-forwarded-for", "49.36.1.1")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-rule"), "rest-anywhere");
    let a = send_with("POST", &url, &body, &[("x-forwarded-for", "8.8.8.8")]).await;
    assert_eq!(a.status, 451, "{}", a.body);
    assert!(a.body.contains("no-us-subjects"), "{}", a.body);
    // What the client wrote left of the proxy's own entry is not believed.
    let a = send_with(
        "POST",
        &url,
        &body,
        &[("x-forwarded-for", "49.36.1.1, 8.8.8.8")],
    )
    .await;
    assert_eq!(a.status, 451, "{}", a.body);
    // The audit log records GeoIP as the source of the country.
    let export = residency_agent::admin::agent_request_raw(
        &fleet.agent.admin_socket(),
        "/v1/admin/audit/export",
    )
    .await
    .unwrap();
    let records: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sources: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["subject_country"].as_str().unwrap_or(""),
                r["country_source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        sources,
        vec![("IN", "geoip"), ("US", "geoip"), ("US", "geoip")]
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (fleet, _k) = fleet_with_geoip("site_country = \"IN\"").await;
    let url = format!("{}/chat/completions", fleet.base());
    // No trusted proxies: a client claiming to be in the US is the loopback
    // client it is, in the agent's site country.
    let a = send_with(
        "POST",
        &url,
        &chat("hello", false),
        &[("x-forwarded-for", "8.8.8.8")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// [`fleet_with_geo`] with the committed GeoIP fixture and `line` in `[geo]`.
async fn fleet_with_geoip(line: &str) -> (Fleet, tempfile::TempDir) {
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agent/tests/fixtures/geoip-test.mmdb"
    );
    fleet_with_geo(
        "sk-crm",
        &format!("[geo]\ngeoip_database = \"{db}\"\n{line}\n"),
    )
    .await
}

async fn fleet_with_geo(key: &str, geo: &str) -> (Fleet, tempfile::TempDir) {
    fleet_with_policy(&policy(key), geo).await
}

/// A fleet whose agent has `geo` in its config and `policy` active.
async fn fleet_with_policy(policy: &str, geo: &str) -> (Fleet, tempfile::TempDir) {
    use residency_agent::policy::sign::{generate_keypair, sign};
    let keydir = tempfile::tempdir().unwrap();
    let (secret, public) = generate_keypair().unwrap();
    let pubfile = keydir.path().join("p.pub");
    std::fs::write(&pubfile, public.to_pem()).unwrap();
    let bundle = sign(policy, 1, 1, &secret).unwrap().encode();
    let fleet = Fleet::start(FleetOptions {
        agent_extra: format!(
            "{geo}[policy]\ntrusted_keys = [\"{}\"]\n",
            pubfile.display()
        ),
        ..FleetOptions::default()
    })
    .await;
    fleet.agent.policy().install(&bundle).unwrap();
    (fleet, keydir)
}

#[tokio::test]
async fn a_region_defined_in_the_config_serves_india_only_data() {
    // A private data centre in Navi Mumbai, not in the built-in catalogue,
    // defined by the agent's and the gateway's config.
    let dir = tempfile::tempdir().unwrap();
    let dc = RegionId::new("yotta:navi-mumbai").unwrap();
    let us = RegionId::new("aws:us-east-1").unwrap();
    keys::generate(
        &dir.path().join("certs"),
        &keys::KeysSpec {
            regions: vec![dc.clone(), us.clone()],
            agent_name: "test-branch".into(),
            extra_names: vec![],
            ..keys::KeysSpec::default()
        },
    )
    .unwrap();
    let mut blocks = String::new();
    let mut providers = Vec::new();
    let mut gateways = Vec::new();
    for region in [&dc, &us] {
        let p = MockProvider::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
            .await
            .unwrap();
        let path = write_gateway_config(
            dir.path(),
            region.as_str(),
            &p.base_url(),
            "127.0.0.1:0",
            &keys::gateway_stem(region),
        );
        if region == &dc {
            // Without saying where it is, the gateway refuses to start.
            let e = GatewayConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains("jurisdiction"), "{e}");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                &path,
                format!("jurisdiction = \"IN\"\ncity = \"Navi Mumbai\"\n{text}"),
            )
            .unwrap();
        }
        let gw = GatewayHandle::start(GatewayConfig::load(&path).unwrap())
            .await
            .unwrap();
        blocks.push_str(&gateway_block(region.as_str(), gw.local_addr()));
        providers.push(p);
        gateways.push(gw);
    }
    let keydir = tempfile::tempdir().unwrap();
    let (secret, public) = residency_agent::policy::sign::generate_keypair().unwrap();
    let pubfile = keydir.path().join("p.pub");
    std::fs::write(&pubfile, public.to_pem()).unwrap();
    let path = dir.path().join("agent.toml");
    let region_block =
        "[[region]]\nid = \"yotta:navi-mumbai\"\njurisdiction = \"IN\"\ncity = \"Navi Mumbai\"\n";
    // Unknown to the agent without its [[region]] entry.
    std::fs::write(&path, agent_config_text("aws:us-east-1", &blocks, "")).unwrap();
    let e = AgentConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("gateway[0].region") && e.contains("[[region]]"),
        "{e}"
    );
    std::fs::write(
        &path,
        agent_config_text(
            "aws:us-east-1",
            &format!("{region_block}{blocks}"),
            &format!(
                "[policy]\ntrusted_keys = [\"{}\"]\nbuiltin_baseline = true\n",
                pubfile.display()
            ),
        ),
    )
    .unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    assert!(agent.wait_connected(Duration::from_secs(10)).await);
    let url = format!("{}/chat/completions", agent.base_url());
    let aadhaar = chat("Aadhaar 2345 6789 0124", false);
    // The built-in baseline counts the config's Indian region as India...
    let a = send("POST", &url, &aadhaar).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), "yotta:navi-mumbai");
    // ...and so does a signed policy that allows only the IN jurisdiction.
    let policy = "name = \"india-only\"\n[[rule]]\nname = \"restricted-in-india\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n[[rule]]\nname = \"rest-anywhere\"\n[rule.allow]\njurisdictions = [\"*\"]\n";
    let bundle = residency_agent::policy::sign::sign(policy, 1, 1, &secret)
        .unwrap()
        .encode();
    agent.policy().install(&bundle).unwrap();
    let a = send("POST", &url, &aadhaar).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-rule"), "restricted-in-india");
    assert_eq!(a.header("x-residency-region"), "yotta:navi-mumbai");
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    assert_eq!(providers[0].received().len(), 2);
    assert_eq!(providers[1].received().len(), 1);
    agent.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_reload_applies_a_new_site_map_to_the_next_request() {
    let (fleet, _k) = fleet_with("US", "sk-crm").await;
    let url = format!("{}/chat/completions", fleet.base());
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.status, 451, "{}", a.body);
    // The branch LAN turns out to be in India after all.
    let path = fleet.dir.path().join("agent.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("country = \"US\"", "country = \"IN\"");
    std::fs::write(&path, text).unwrap();
    let restart = fleet
        .agent
        .reload(&AgentConfig::load(&path).unwrap())
        .unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // A GeoIP database that cannot be read is refused; the running one stays.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[geo]\n",
        "[geo]\ngeoip_database = \"/nonexistent/GeoLite2-Country.mmdb\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let e = fleet
        .agent
        .reload(&AgentConfig::load(&path).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("geoip_database"), "{e}");
    let a = send("POST", &url, &chat("hello", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn policy_test_with_the_agents_config_predicts_what_the_agent_does() {
    // Indian data subjects go to Hyderabad first; the branch LAN is in India
    // by the site map, which only the agent's config knows.
    const POLICY: &str = r#"
name = "indian-subjects-in-hyderabad"
[[rule]]
name = "indian-subjects"
[rule.match]
subject_country = ["IN"]
[rule.allow]
regions = ["aws:ap-south-2"]
jurisdictions = ["IN"]
[[rule]]
name = "rest"
[rule.allow]
jurisdictions = ["*"]
"#;
    let (fleet, _k) = fleet_with_policy(
        POLICY,
        "[[geo.site]]\nname = \"branch-lan\"\ncidrs = [\"127.0.0.0/8\"]\ncountry = \"IN\"\n",
    )
    .await;
    let body = chat("hello", false);
    let a = send("POST", &format!("{}/chat/completions", fleet.base()), &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-rule"), "indian-subjects");
    let served = a.header("x-residency-region").to_owned();
    assert_eq!(served, "aws:ap-south-2");

    let dir = fleet.dir.path();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    std::fs::write(dir.join("req.json"), &body).unwrap();
    let policy_test = |extra: &[&str]| {
        let out = std::process::Command::new(agent_bin())
            .args(["policy", "test", "--policy"])
            .arg(dir.join("policy.toml"))
            .arg("--request")
            .arg(dir.join("req.json"))
            .args(["--client-ip", "127.0.0.1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let config = dir.join("agent.toml");
    let o = policy_test(&["--config", config.to_str().unwrap()]);
    assert!(o.contains("rule: indian-subjects\n"), "{o}");
    assert!(o.contains("subject country: IN (from site_map)\n"), "{o}");
    // The agent's gateway regions, in the order it tries them: the one it
    // used first.
    assert!(
        o.contains(&format!(
            "allowed regions (preference order): {served}, aws:ap-south-1\n"
        )),
        "{o}"
    );
    assert!(!o.contains("us-east-1"), "{o}");
    // Without the agent's config the client cannot be located, and the
    // prediction is a different rule: the reason --config exists.
    let o = policy_test(&[]);
    assert!(o.contains("rule: rest\n"), "{o}");
    assert!(o.contains("(geography not resolved)"), "{o}");
}
