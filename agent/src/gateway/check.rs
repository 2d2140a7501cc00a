//! `residency-agent gateway --check`: what a gateway.toml would do, without
//! serving: the provider URL each model's requests go to under the provider's
//! name for it, where it is processed, and whether the credentials work.

use std::fmt::Write as _;

use crate::config::GatewayConfig;

use super::models::ModelMap;
use super::upstream::Upstream;

/// The report for `cfg`, or why its credentials do not work (the report so
/// far included).
pub async fn report(cfg: &GatewayConfig) -> Result<String, String> {
    let mut out = String::new();
    let catalogue = cfg.catalogue();
    let where_ = catalogue
        .jurisdiction(&cfg.region)
        .map_or_else(|| "unknown jurisdiction".to_owned(), |j| j.to_string());
    let upstream = Upstream::new(cfg).map_err(|e| format!("upstream: {e}"))?;
    let _ = writeln!(
        out,
        "gateway {} ({where_}): upstream kind {}, max tier {}",
        cfg.region,
        cfg.upstream.kind.as_str(),
        cfg.max_tier()
    );
    let map = ModelMap::new(cfg);
    if map.is_open() {
        let url = upstream
            .url_for("/v1/chat/completions", None)
            .unwrap_or_else(|e| e.to_string());
        let _ = writeln!(
            out,
            "  no [[model]]: any model name is passed on as sent\n    POST /v1/chat/completions -> {url}"
        );
    }
    for m in &cfg.models {
        let served = map.resolve(
            &m.name,
            m.apis.first().map_or("chat/completions", String::as_str),
        );
        let Ok(Some(served)) = served else { continue };
        let aliases = if m.aliases.is_empty() {
            String::new()
        } else {
            format!(" (aliases {})", m.aliases.join(", "))
        };
        let _ = writeln!(
            out,
            "  {}{aliases} -> {}, processed {}, forwards at most {} data",
            m.name,
            served.upstream,
            super::processed(served.processing),
            map.max_tier(Some(served), cfg.max_tier())
        );
        let apis: Vec<&str> = if m.apis.is_empty() {
            vec!["chat/completions"]
        } else {
            m.apis.iter().map(String::as_str).collect()
        };
        for api in apis {
            let url = upstream
                .url_for(&format!("/v1/{api}"), Some(&served.upstream))
                .unwrap_or_else(|e| e.to_string());
            let _ = writeln!(out, "    POST /v1/{api} -> {url}");
        }
    }
    match upstream.prove_credentials().await {
        Ok(what) => {
            let _ = writeln!(out, "credentials: ok, {what}");
            Ok(out)
        }
        Err(e) => {
            let _ = writeln!(out, "credentials: FAILED, {e}");
            Err(out)
        }
    }
}
