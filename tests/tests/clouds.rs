//! Real cloud endpoints behind the gateways: each upstream kind's URL layout
//! and auth scheme against a strict mock of that cloud, model maps
//! advertised to the agent, and failover that keeps a model inside the
//! jurisdiction under each cloud's own name for it.

#![allow(clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};
use std::time::Duration;

use residency_agent::config::{AgentConfig, GatewayConfig};
use residency_agent::demo::mock_provider::{MockCloud, MockOptions, MockProvider};
use residency_agent::gateway::GatewayHandle;
use residency_agent::keys::{self, KeysSpec};
use residency_agent::AgentHandle;
use residency_proto::RegionId;
use residency_tests::*;

const PUNE: &str = "azure:centralindia";
const HYDERABAD: &str = "aws:ap-south-2";
const VIRGINIA: &str = "aws:us-east-1";
const AADHAAR: &str = "2345 6789 0124";

/// A fleet of gateways, each in front of its own cloud's mock.
struct Clouds {
    _dir: tempfile::TempDir,
    providers: Vec<(String, MockProvider)>,
    gateways: Vec<(String, PathBuf, Option<GatewayHandle>)>,
    addrs: Vec<(String, std::net::SocketAddr)>,
    agent: AgentHandle,
}

/// One gateway: its region, its cloud's mock, the `[upstream]` body (the
/// mock's address is `{addr}`), and its `[[model]]`s.
struct Spec {
    region: &'static str,
    cloud: MockCloud,
    upstream: String,
    models: String,
}

fn certs(dir: &Path, regions: &[&str]) {
    keys::generate(
        &dir.join("certs"),
        &KeysSpec {
            regions: regions.iter().map(|r| RegionId::new(r).unwrap()).collect(),
            agent_name: "test-branch".into(),
            ..KeysSpec::default()
        },
    )
    .unwrap();
}

fn gateway_toml(dir: &Path, region: &str, upstream: &str, models: &str) -> PathBuf {
    let stem = keys::gateway_stem(&RegionId::new(region).unwrap());
    let path = dir.join(format!("{stem}.toml"));
    let text = format!(
        "region = \"{region}\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state-{stem}\"\n\
         [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{stem}.pem\"\nkey = \"certs/{stem}.key\"\n\
         [upstream]\n{upstream}\n{FAST_QUIC}\n{models}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Clouds {
    async fn start(specs: Vec<Spec>) -> Clouds {
        let dir = tempfile::tempdir().unwrap();
        let regions: Vec<&str> = specs.iter().map(|s| s.region).collect();
        certs(dir.path(), &regions);
        let mut providers = Vec::new();
        let mut gateways = Vec::new();
        let mut blocks = String::new();
        let mut addrs = Vec::new();
        for s in specs {
            let mock = MockProvider::start(
                "127.0.0.1:0".parse().unwrap(),
                MockOptions {
                    label: s.region.into(),
                    chunk_delay: Duration::from_millis(1),
                    cloud: s.cloud,
                    ..MockOptions::default()
                },
            )
            .await
            .unwrap();
            let upstream = s.upstream.replace("{addr}", &mock.addr().to_string());
            let path = gateway_toml(dir.path(), s.region, &upstream, &s.models);
            let gw = GatewayHandle::start(GatewayConfig::load(&path).unwrap())
                .await
                .unwrap();
            blocks.push_str(&gateway_block(s.region, gw.local_addr()));
            addrs.push((s.region.to_owned(), gw.local_addr()));
            providers.push((s.region.to_owned(), mock));
            gateways.push((s.region.to_owned(), path, Some(gw)));
        }
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, agent_config_text(VIRGINIA, &blocks, "")).unwrap();
        let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
            .await
            .unwrap();
        assert!(agent.wait_connected(Duration::from_secs(10)).await);
        Clouds {
            _dir: dir,
            providers,
            gateways,
            addrs,
            agent,
        }
    }

    fn provider(&self, region: &str) -> &MockProvider {
        &self.providers.iter().find(|(r, _)| r == region).unwrap().1
    }

    async fn stop(&mut self, region: &str) {
        let gw = self
            .gateways
            .iter_mut()
            .find(|(r, _, _)| r == region)
            .unwrap();
        gw.2.take()
            .unwrap()
            .shutdown(Duration::from_millis(100))
            .await;
    }

    /// Starts a stopped gateway again on the address it had.
    async fn restart(&mut self, region: &str) -> GatewayHandle {
        let (_, path, _) = self.gateways.iter().find(|(r, _, _)| r == region).unwrap();
        let addr = self.addrs.iter().find(|(r, _)| r == region).unwrap().1;
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
        std::fs::write(path, text).unwrap();
        GatewayHandle::start(GatewayConfig::load(path).unwrap())
            .await
            .unwrap()
    }

    fn gateway(&self, region: &str) -> (&PathBuf, &GatewayHandle) {
        let (_, path, gw) = self.gateways.iter().find(|(r, _, _)| r == region).unwrap();
        (path, gw.as_ref().unwrap())
    }

    async fn chat(&self, model: &str, content: &str) -> Answer {
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": content}],
        });
        send(
            "POST",
            &format!("{}/chat/completions", self.agent.base_url()),
            &body.to_string(),
        )
        .await
    }

    async fn models(&self) -> serde_json::Value {
        let a = send("GET", &format!("{}/models", self.agent.base_url()), "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    /// Waits until `/v1/models` satisfies `ok`.
    async fn models_until(&self, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        for _ in 0..100 {
            let m = self.models().await;
            if ok(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "/v1/models never became as expected: {}",
            self.models().await
        );
    }
}

/// The regions `/v1/models` lists for `model` (None if it is not listed).
fn regions_of(list: &serde_json::Value, model: &str) -> Option<Vec<String>> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == model)
        .map(|m| {
            m["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect()
        })
}

fn body_model(r: &residency_agent::demo::mock_provider::ReceivedRequest) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["model"].as_str().unwrap().to_owned()
}

fn azure_deployments() -> Spec {
    Spec {
        region: PUNE,
        cloud: MockCloud::Azure {
            api_key: Some("azure-key".into()),
            entra_token: None,
            deployments: vec!["prod-gpt4o".into(), "pune-mini".into()],
            api_version: "2024-10-21".into(),
        },
        upstream: "kind = \"azure-openai\"\nendpoint = \"http://{addr}\"\napi_key = \"azure-key\"\nsurface = \"deployments\"\napi_version = \"2024-10-21\"".into(),
        models: "[[model]]\nname = \"gpt-4o\"\nupstream = \"prod-gpt4o\"\nprocessing = \"region\"\n\
                 [[model]]\nname = \"gpt-4o-mini\"\naliases = [\"mini\"]\nupstream = \"pune-mini\"\nprocessing = \"region\"\n"
            .into(),
    }
}

fn bedrock_api_key() -> Spec {
    Spec {
        region: HYDERABAD,
        cloud: MockCloud::Bedrock {
            api_key: "bedrock-api-key".into(),
            models: vec!["openai.gpt-oss-120b-1:0".into()],
        },
        upstream: "kind = \"bedrock\"\nbase_url = \"http://{addr}/openai/v1\"\napi_key = \"bedrock-api-key\"".into(),
        models: "[[model]]\nname = \"gpt-4o\"\nupstream = \"openai.gpt-oss-120b-1:0\"\napis = [\"chat/completions\"]\nprocessing = \"region\"\n".into(),
    }
}

fn virginia_openai() -> Spec {
    Spec {
        region: VIRGINIA,
        cloud: MockCloud::OpenAi,
        upstream: "base_url = \"http://{addr}/v1\"\napi_key = \"openai-key\"".into(),
        models: "[[model]]\nname = \"gpt-4o\"\nprocessing = \"region\"\n[[model]]\nname = \"gpt-5\"\nprocessing = \"region\"\n".into(),
    }
}

#[tokio::test]
async fn failover_keeps_a_model_inside_india_under_each_clouds_name_for_it() {
    let mut f = Clouds::start(vec![
        azure_deployments(),
        bedrock_api_key(),
        virginia_openai(),
    ])
    .await;
    let restricted = format!("My Aadhaar is {AADHAAR}");

    // Pune (Azure) first: the deployment is in the path, the api-version in
    // the query, the key in `api-key`.
    let a = f.chat("gpt-4o", &restricted).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), PUNE);
    assert_eq!(a.header("x-residency-tier"), "restricted");
    let got = f.provider(PUNE).received();
    let last = got.last().unwrap();
    assert_eq!(last.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(last.query, "api-version=2024-10-21");
    assert_eq!(body_model(last), "prod-gpt4o");

    // Pune goes down: Hyderabad (Bedrock) answers under Bedrock's model id.
    f.stop(PUNE).await;
    let a = f.chat("gpt-4o", &restricted).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), HYDERABAD);
    let got = f.provider(HYDERABAD).received();
    let last = got.last().unwrap();
    assert_eq!(last.path, "/openai/v1/chat/completions");
    assert_eq!(body_model(last), "openai.gpt-oss-120b-1:0");
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer bedrock-api-key")
    );

    // A model only Pune served, and one only Virginia serves: no Indian
    // gateway has them, so 503 naming the model, never Virginia.
    for model in ["gpt-4o-mini", "gpt-5"] {
        let a = f.chat(model, &restricted).await;
        assert_eq!(a.status, 503, "{model}: {}", a.body);
        let e = a.json();
        assert_eq!(e["error"]["type"], "no_compliant_route", "{model}");
        assert_eq!(e["error"]["code"], "no_gateway_for_model", "{model}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("\"{model}\"")), "{msg}");
        assert!(!msg.contains(AADHAAR), "{msg}");
    }
    assert_eq!(f.provider(VIRGINIA).received_total(), 0);

    // Public data for gpt-5 may go to Virginia, the only gateway serving it.
    let a = f.chat("gpt-5", "What is the capital of France?").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), VIRGINIA);
    assert_eq!(
        body_model(f.provider(VIRGINIA).received().last().unwrap()),
        "gpt-5"
    );
}

#[tokio::test]
async fn the_model_list_follows_gateways_coming_going_and_reloading() {
    let mut f = Clouds::start(vec![
        azure_deployments(),
        bedrock_api_key(),
        virginia_openai(),
    ])
    .await;
    let list = f.models().await;
    assert_eq!(list["object"], "list");
    assert_eq!(
        regions_of(&list, "gpt-4o").unwrap(),
        [VIRGINIA, PUNE, HYDERABAD]
    );
    assert_eq!(regions_of(&list, "gpt-4o-mini").unwrap(), [PUNE]);
    assert_eq!(regions_of(&list, "gpt-5").unwrap(), [VIRGINIA]);
    // The list is the agent's own answer: no provider was asked.
    assert!(f.providers.iter().all(|(_, p)| p.received_total() == 0));
    // One model, by name or alias.
    let a = send("GET", &format!("{}/models/mini", f.agent.base_url()), "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["id"], "gpt-4o-mini");
    let a = send("GET", &format!("{}/models/gpt-9", f.agent.base_url()), "").await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "model_not_found");

    // Going: Pune's models leave with it.
    f.stop(PUNE).await;
    let list = f
        .models_until(|l| regions_of(l, "gpt-4o-mini").is_none())
        .await;
    assert_eq!(regions_of(&list, "gpt-4o").unwrap(), [VIRGINIA, HYDERABAD]);

    // Reloading: Hyderabad starts serving a second model; the agent hears
    // of it on the connection it holds and routes to it.
    let (path, gw) = f.gateway(HYDERABAD);
    let text = std::fs::read_to_string(path).unwrap()
        + "[[model]]\nname = \"gpt-4o-mini\"\nupstream = \"openai.gpt-oss-120b-1:0\"\nprocessing = \"region\"\n";
    std::fs::write(path, text).unwrap();
    gw.reload(&GatewayConfig::load(path).unwrap()).unwrap();
    let list = f
        .models_until(|l| regions_of(l, "gpt-4o-mini").is_some())
        .await;
    assert_eq!(regions_of(&list, "gpt-4o-mini").unwrap(), [HYDERABAD]);
    let a = f.chat("gpt-4o-mini", &format!("Aadhaar {AADHAAR}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), HYDERABAD);

    // Coming: Pune comes back on its address; the agent reconnects by
    // itself and hears its model list again.
    let gw = f.restart(PUNE).await;
    let list = f
        .models_until(|l| regions_of(l, "gpt-4o").is_some_and(|r| r.len() == 3))
        .await;
    assert_eq!(
        regions_of(&list, "gpt-4o").unwrap(),
        [VIRGINIA, PUNE, HYDERABAD]
    );
    assert_eq!(regions_of(&list, "gpt-4o-mini").unwrap(), [PUNE, HYDERABAD]);
    gw.shutdown(Duration::from_millis(100)).await;
}
