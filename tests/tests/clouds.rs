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
    /// Files written next to the config first (`{addr}` replaced).
    files: Vec<(&'static str, String)>,
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
        // Virginia is the default region when it is in the fleet.
        let default_region = if regions.contains(&VIRGINIA) {
            VIRGINIA
        } else {
            regions[0]
        };
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
            let addr = mock.addr().to_string();
            for (name, text) in &s.files {
                std::fs::write(dir.path().join(name), text.replace("{addr}", &addr)).unwrap();
            }
            let upstream = s.upstream.replace("{addr}", &addr);
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
        std::fs::write(&path, agent_config_text(default_region, &blocks, "")).unwrap();
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
        files: Vec::new(),
    }
}

fn bedrock_api_key() -> Spec {
    Spec {
        region: HYDERABAD,
        cloud: MockCloud::Bedrock {
            api_key: Some("bedrock-api-key".into()),
            sigv4: None,
            models: vec!["openai.gpt-oss-120b-1:0".into()],
        },
        upstream: "kind = \"bedrock\"\nbase_url = \"http://{addr}/openai/v1\"\napi_key = \"bedrock-api-key\"".into(),
        models: "[[model]]\nname = \"gpt-4o\"\nupstream = \"openai.gpt-oss-120b-1:0\"\napis = [\"chat/completions\"]\nprocessing = \"region\"\n".into(),
        files: Vec::new(),
    }
}

fn virginia_openai() -> Spec {
    Spec {
        region: VIRGINIA,
        cloud: MockCloud::OpenAi,
        upstream: "base_url = \"http://{addr}/v1\"\napi_key = \"openai-key\"".into(),
        models: "[[model]]\nname = \"gpt-4o\"\nprocessing = \"region\"\n[[model]]\nname = \"gpt-5\"\nprocessing = \"region\"\n".into(),
        files: Vec::new(),
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
    // Status shows each gateway's advertised models and where they run.
    let status = send(
        "GET",
        &format!("http://{}/v1/status", f.agent.observe_addr()),
        "",
    )
    .await
    .json();
    let pune = status["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["region"] == PUNE)
        .unwrap();
    assert_eq!(
        pune["models"],
        serde_json::json!({"gpt-4o": "region", "gpt-4o-mini": "region"})
    );
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

const MUMBAI_AWS: &str = "aws:ap-south-1";
const MUMBAI_GCP: &str = "gcp:asia-south1";
const CHENNAI: &str = "azure:southindia";

#[tokio::test]
async fn bedrock_with_sigv4_and_vertex_with_refreshed_tokens() {
    // SigV4 credentials come from the gateway's environment, as in AWS.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDRESIDENCYTEST");
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        "residency/test/secret/key/EXAMPLEKEY",
    );
    std::env::remove_var("AWS_SESSION_TOKEN");
    let sa = include_str!("../fixtures/vertex-service-account.json")
        .replace("http://127.0.0.1/token", "http://{addr}/token");
    let public = include_str!("../fixtures/vertex-service-account.pub.pem");
    let f = Clouds::start(vec![
        Spec {
            region: MUMBAI_AWS,
            cloud: MockCloud::Bedrock {
                api_key: None,
                sigv4: Some((
                    residency_agent::gateway::upstream::sigv4::AwsCredentials {
                        access_key_id: "AKIDRESIDENCYTEST".into(),
                        secret_access_key: "residency/test/secret/key/EXAMPLEKEY".into(),
                        session_token: None,
                    },
                    "ap-south-1".into(),
                )),
                models: vec!["openai.gpt-oss-20b-1:0".into()],
            },
            upstream: "kind = \"bedrock\"\nauth = \"sigv4\"\nbase_url = \"http://{addr}/openai/v1\"".into(),
            models: "[[model]]\nname = \"gpt-oss\"\nupstream = \"openai.gpt-oss-20b-1:0\"\nprocessing = \"region\"\n".into(),
            files: Vec::new(),
        },
        Spec {
            region: MUMBAI_GCP,
            cloud: MockCloud::Vertex {
                project: "residency-test".into(),
                location: "asia-south1".into(),
                models: vec!["google/gemini-2.0-flash".into()],
                client_email: "gateway@residency-test.iam.gserviceaccount.com".into(),
                public_key_pem: public.into(),
                token_lifetime: Duration::from_secs(2),
            },
            upstream: "kind = \"vertex\"\nproject = \"residency-test\"\ncredentials = \"vertex-sa.json\"\n\
                       base_url = \"http://{addr}/v1/projects/residency-test/locations/asia-south1/endpoints/openapi\"".into(),
            models: "[[model]]\nname = \"gemini-flash\"\nupstream = \"google/gemini-2.0-flash\"\nprocessing = \"region\"\n".into(),
            files: vec![("vertex-sa.json", sa)],
        },
    ])
    .await;
    let restricted = format!("Aadhaar {AADHAAR}");

    // Bedrock: the mock re-computes the SigV4 signature with the secret and
    // accepts only an exact match.
    let a = f.chat("gpt-oss", &restricted).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), MUMBAI_AWS);
    let got = f.provider(MUMBAI_AWS).received();
    let last = got.last().unwrap();
    assert!(
        last.authorization
            .as_deref()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDRESIDENCYTEST/"),
        "{:?}",
        last.authorization
    );
    assert!(last
        .authorization
        .as_deref()
        .unwrap()
        .contains("/ap-south-1/bedrock/aws4_request"));
    assert_eq!(body_model(last), "openai.gpt-oss-20b-1:0");

    // Vertex: one token for the first requests, a new one once it is near
    // expiry; the provider sees only tokens it issued.
    for _ in 0..2 {
        let a = f.chat("gemini-flash", &restricted).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-residency-region"), MUMBAI_GCP);
    }
    let vertex = f.provider(MUMBAI_GCP);
    assert_eq!(vertex.tokens_issued(), 1);
    let last = vertex.received().into_iter().last().unwrap();
    assert_eq!(
        last.path,
        "/v1/projects/residency-test/locations/asia-south1/endpoints/openapi/chat/completions"
    );
    assert_eq!(body_model(&last), "google/gemini-2.0-flash");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = f.chat("gemini-flash", &restricted).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(vertex.tokens_issued(), 2);
}

#[tokio::test]
async fn azure_v1_surface_with_an_entra_token_and_a_wrong_key_seen_as_the_provider_says() {
    let azure = |region: &'static str, auth: &str, files: Vec<(&'static str, String)>| Spec {
        region,
        cloud: MockCloud::Azure {
            api_key: Some("azure-key".into()),
            entra_token: Some("entra-token-for-test".into()),
            deployments: vec!["chennai-4o".into()],
            api_version: "2024-10-21".into(),
        },
        upstream: format!("kind = \"azure-openai\"\nendpoint = \"http://{{addr}}\"\n{auth}"),
        models:
            "[[model]]\nname = \"gpt-4o\"\nupstream = \"chennai-4o\"\nprocessing = \"region\"\n"
                .into(),
        files,
    };
    let f = Clouds::start(vec![
        azure(
            CHENNAI,
            "bearer_token_file = \"entra-token\"",
            vec![("entra-token", "entra-token-for-test\n".into())],
        ),
        azure(PUNE, "api_key = \"not-the-key\"", Vec::new()),
    ])
    .await;
    let a = f.chat("gpt-4o", &format!("Aadhaar {AADHAAR}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), CHENNAI);
    let last = f.provider(CHENNAI).received().into_iter().last().unwrap();
    assert_eq!(last.path, "/openai/v1/chat/completions");
    assert_eq!(body_model(&last), "chennai-4o");
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer entra-token-for-test")
    );
    // The Pune gateway holds a wrong key: Azure's 401 reaches the app as is.
    let (_, pune) = f.gateway(PUNE);
    let mut blocks = gateway_block(PUNE, pune.local_addr());
    blocks.push('\n');
    let (only_pune, up) = agent_only(&f, &blocks).await;
    assert!(up);
    let a = send(
        "POST",
        &format!("{}/chat/completions", only_pune.base_url()),
        &serde_json::json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})
            .to_string(),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), PUNE);
}

/// Another agent with only `blocks` as its gateways.
async fn agent_only(f: &Clouds, blocks: &str) -> (AgentHandle, bool) {
    let path = f._dir.path().join("agent-only.toml");
    std::fs::write(&path, agent_config_text(PUNE, blocks, "")).unwrap();
    let agent = AgentHandle::start(AgentConfig::load(&path).unwrap())
        .await
        .unwrap();
    let up = agent.wait_connected(Duration::from_secs(10)).await;
    (agent, up)
}

#[tokio::test]
async fn a_model_processed_outside_india_is_marked_and_never_gets_restricted_data() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &[CHENNAI]);
    let global =
        "[[model]]\nname = \"gpt-4.1\"\nupstream = \"global-41\"\nprocessing = \"global\"\n";
    let path = gateway_toml(
        dir.path(),
        CHENNAI,
        "kind = \"azure-openai\"\nendpoint = \"http://127.0.0.1:9\"\napi_key = \"k\"",
        global,
    );
    let e = GatewayConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("model[0].processing"), "{e}");
    assert!(e.contains("allow_processing_outside"), "{e}");

    let f = Clouds::start(vec![Spec {
        region: CHENNAI,
        cloud: MockCloud::Azure {
            api_key: Some("azure-key".into()),
            entra_token: None,
            deployments: vec!["global-41".into(), "zone-4o".into()],
            api_version: "2024-10-21".into(),
        },
        upstream: "kind = \"azure-openai\"\nendpoint = \"http://{addr}\"\napi_key = \"azure-key\""
            .into(),
        models: format!(
            "{global}allow_processing_outside = true\n\
             [[model]]\nname = \"gpt-4o\"\nupstream = \"zone-4o\"\nprocessing = \"IN\"\n"
        ),
        files: Vec::new(),
    }])
    .await;
    // Restricted data: the global deployment is processed anywhere, which
    // the rule (IN only) does not allow.
    let a = f.chat("gpt-4.1", &format!("Aadhaar {AADHAAR}")).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "no_gateway_for_model");
    assert!(a.body.contains("processes it outside"), "{}", a.body);
    assert_eq!(f.provider(CHENNAI).received_total(), 0);
    // A data zone inside India takes it.
    let a = f.chat("gpt-4o", &format!("Aadhaar {AADHAAR}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Public data may be processed anywhere.
    let a = f
        .chat("gpt-4.1", "Summarise the RBI circular on UPI limits")
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), CHENNAI);
    assert_eq!(
        body_model(&f.provider(CHENNAI).received().into_iter().last().unwrap()),
        "global-41"
    );
    assert_eq!(regions_of(&f.models().await, "gpt-4.1").unwrap(), [CHENNAI]);
}

/// `gateway --check` with the real binary: the URL each model's requests go
/// to, and a real token fetched from the (mock) token endpoint; a key the
/// endpoint does not know fails with its error code and exit status 1.
#[tokio::test]
async fn gateway_check_shows_the_provider_urls_and_proves_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &[MUMBAI_GCP]);
    let public = include_str!("../fixtures/vertex-service-account.pub.pem");
    let mock = MockProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            cloud: MockCloud::Vertex {
                project: "residency-test".into(),
                location: "asia-south1".into(),
                models: vec!["google/gemini-2.0-flash".into()],
                client_email: "gateway@residency-test.iam.gserviceaccount.com".into(),
                public_key_pem: public.into(),
                token_lifetime: Duration::from_secs(60),
            },
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    let good = include_str!("../fixtures/vertex-service-account.json")
        .replace("http://127.0.0.1/token", &mock.token_uri());
    let key: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut bad = key.clone();
    bad["private_key"] = include_str!("../fixtures/vertex-other-key.pem").into();
    std::fs::write(dir.path().join("good.json"), &good).unwrap();
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let models = "[[model]]\nname = \"gemini-flash\"\nupstream = \"google/gemini-2.0-flash\"\napis = [\"chat/completions\", \"embeddings\"]\nprocessing = \"region\"\n";
    let root = dir.path().to_owned();
    let run = move |file: &str| {
        let path = gateway_toml(
            &root,
            MUMBAI_GCP,
            &format!("kind = \"vertex\"\nproject = \"residency-test\"\ncredentials = \"{file}\""),
            models,
        );
        let out = std::process::Command::new(agent_bin())
            .args(["gateway", "--check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = tokio::task::spawn_blocking(move || {
        let good = run("good.json");
        let bad = run("bad.json");
        (good, bad)
    })
    .await
    .map(|(good, bad)| {
        assert_eq!(bad.0, Some(1), "{}", bad.1);
        assert!(bad.1.contains("credentials: FAILED"), "{}", bad.1);
        assert!(bad.1.contains("invalid_grant"), "{}", bad.1);
        good
    })
    .unwrap();
    assert_eq!(code, Some(0), "{out}");
    let base = "https://asia-south1-aiplatform.googleapis.com/v1/projects/residency-test/locations/asia-south1/endpoints/openapi";
    assert!(
        out.contains("gemini-flash -> google/gemini-2.0-flash, processed in the gateway's region"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "POST /v1/chat/completions -> {base}/chat/completions"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("POST /v1/embeddings -> {base}/embeddings")),
        "{out}"
    );
    assert!(
        out.contains("credentials: ok, access token obtained"),
        "{out}"
    );
    assert_eq!(mock.tokens_issued(), 1);
    assert!(!out.contains("PRIVATE KEY"), "{out}");
}

/// A request head sent straight to a gateway, as an agent that routed wrongly
/// (or lies) would; the gateway's first frame back.
async fn ask_gateway(
    f: &Clouds,
    region: &str,
    tier: residency_proto::Tier,
    body: &str,
) -> residency_proto::Frame {
    use residency_agent::transport::stream::{read_frame, send_frame, Connection, SendHalf};
    use residency_agent::transport::tls::{TlsFiles, TlsMaterial};
    let certs = f._dir.path().join("certs");
    let material = TlsMaterial::load(&TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join("agent.pem"),
        key: certs.join("agent.key"),
    })
    .unwrap();
    let region_id = RegionId::new(region).unwrap();
    let crypto = material.client_config(&region_id).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let (_, gw) = f.gateway(region);
    let conn = endpoint
        .connect_with(
            quinn::ClientConfig::new(std::sync::Arc::new(quic)),
            gw.local_addr(),
            "localhost",
        )
        .unwrap()
        .await
        .unwrap();
    let conn = residency_agent::transport::stream::quic::Quic(conn);
    let codec = residency_proto::Codec::default();
    let head = residency_proto::Frame::RequestHead(residency_proto::RequestHead {
        request_id: "raw-1".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        route: residency_proto::RouteFacts {
            region: region_id,
            tier,
            policy_version: None,
        },
    });
    let (mut send, mut recv) = conn.open().await.unwrap();
    send_frame(&mut send, &codec, &head, body.as_bytes())
        .await
        .unwrap();
    send.finish();
    let (frame, _) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, &codec))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    frame
}

#[tokio::test]
async fn the_gateway_itself_refuses_unserved_models_and_restricted_data_for_a_global_model() {
    use residency_proto::{ErrorCode, Frame, Tier};
    let f = Clouds::start(vec![Spec {
        region: CHENNAI,
        cloud: MockCloud::Azure {
            api_key: Some("azure-key".into()),
            entra_token: None,
            deployments: vec!["global-41".into(), "zone-4o".into()],
            api_version: "2024-10-21".into(),
        },
        upstream: "kind = \"azure-openai\"\nendpoint = \"http://{addr}\"\napi_key = \"azure-key\"".into(),
        models: "[[model]]\nname = \"gpt-4.1\"\nupstream = \"global-41\"\nprocessing = \"global\"\nallow_processing_outside = true\n\
                 [[model]]\nname = \"gpt-4o\"\nupstream = \"zone-4o\"\nprocessing = \"IN\"\n"
            .into(),
        files: Vec::new(),
    }])
    .await;
    let chat = |model: &str, text: &str| {
        serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
            .to_string()
    };
    let refused = |frame: Frame| match frame {
        Frame::Error(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let e = refused(ask_gateway(&f, CHENNAI, Tier::Public, &chat("gpt-9", "hi")).await);
    assert_eq!(e.code, ErrorCode::ModelNotServed, "{}", e.message);
    assert!(e.message.contains("gpt-9"), "{}", e.message);
    // Restricted data for the global deployment: by the agent's word, and
    // by the gateway's own scan when the agent says public.
    let e = refused(ask_gateway(&f, CHENNAI, Tier::Restricted, &chat("gpt-4.1", "hi")).await);
    assert_eq!(e.code, ErrorCode::PolicyDenied, "{}", e.message);
    assert!(e.message.contains("anywhere (global)"), "{}", e.message);
    let pii = format!("Aadhaar {AADHAAR}");
    let e = refused(ask_gateway(&f, CHENNAI, Tier::Public, &chat("gpt-4.1", &pii)).await);
    assert_eq!(e.code, ErrorCode::PolicyDenied, "{}", e.message);
    assert!(!e.message.contains(AADHAAR), "{}", e.message);
    assert_eq!(f.provider(CHENNAI).received_total(), 0);
    // The India data zone takes it.
    match ask_gateway(&f, CHENNAI, Tier::Restricted, &chat("gpt-4o", &pii)).await {
        Frame::ResponseHead(h) => assert_eq!(h.status, 200),
        other => panic!("expected an answer, got {other:?}"),
    }
    assert_eq!(f.provider(CHENNAI).received_total(), 1);
}

#[tokio::test]
async fn an_upload_names_its_model_in_a_form_field_and_goes_where_that_model_is() {
    let mut pune = azure_deployments();
    pune.models.push_str(
        "[[model]]\nname = \"whisper-1\"\nupstream = \"pune-whisper\"\napis = [\"audio/transcriptions\"]\nprocessing = \"region\"\n",
    );
    if let MockCloud::Azure { deployments, .. } = &mut pune.cloud {
        deployments.push("pune-whisper".into());
    }
    let f = Clouds::start(vec![bedrock_api_key(), pune]).await;
    let body = "--B0UND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"call.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....WAVEfmt \r\n--B0UND\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--B0UND--\r\n";
    let a = send_with(
        "POST",
        &format!("{}/audio/transcriptions", f.agent.base_url()),
        body,
        &[("content-type", "multipart/form-data; boundary=B0UND")],
    )
    .await;
    // Hyderabad is first in policy order but serves no whisper-1: Pune does.
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-region"), PUNE);
    assert_eq!(f.provider(HYDERABAD).received_total(), 0);
    // Not even asked: the agent read the form's model and skipped it.
    let status = send(
        "GET",
        &format!("http://{}/v1/status", f.agent.observe_addr()),
        "",
    )
    .await
    .json();
    let hyderabad = status["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["region"] == HYDERABAD)
        .unwrap()
        .clone();
    assert_eq!(hyderabad["requests"], 0, "{hyderabad}");
    let last = f.provider(PUNE).received().into_iter().last().unwrap();
    assert_eq!(
        last.path,
        "/openai/deployments/pune-whisper/audio/transcriptions"
    );
    let sent = String::from_utf8_lossy(&last.body);
    assert!(sent.contains("\r\n\r\npune-whisper\r\n--B0UND--"), "{sent}");
    assert!(!sent.contains("whisper-1"), "{sent}");
}
