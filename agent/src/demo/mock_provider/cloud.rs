//! The front doors of the clouds that sell OpenAI-compatible models, as the
//! mock provider plays them: each checks its own auth scheme and URL layout
//! strictly, like the real service, then hands the request on to the OpenAI
//! surface in `api` under its `/v1/…` path.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use super::oauth::TokenIssuer;
use super::{full, Body, MockCloud};

/// The front door's own answer.
type Answered = Box<http::Response<Body>>;

fn reply(status: StatusCode, v: serde_json::Value) -> Answered {
    Box::new(full(status, v))
}

/// The `/v1/…` path and query a cloud request stands for.
#[derive(Debug)]
pub(super) struct Translated {
    pub(super) path: String,
    pub(super) query: String,
}

/// Checks auth and layout for `cloud`; the OpenAI path the request maps to,
/// or the front door's own answer (an error, or a token from `issuer`).
pub(super) fn front_door(
    cloud: &MockCloud,
    issuer: Option<&TokenIssuer>,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Result<Translated, Answered> {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = || header("authorization").and_then(|a| a.strip_prefix("Bearer "));
    match cloud {
        MockCloud::OpenAi => Ok(Translated {
            path: path.to_owned(),
            query: query.to_owned(),
        }),
        MockCloud::Azure {
            api_key,
            entra_token,
            deployments,
            api_version,
        } => {
            let authed = match (header("api-key"), bearer()) {
                (Some(k), _) => api_key.as_deref() == Some(k),
                (None, Some(t)) => entra_token.as_deref() == Some(t),
                (None, None) => false,
            };
            if !authed {
                return Err(reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
                ));
            }
            let Some(rest) = path.strip_prefix("/openai/") else {
                return Err(not_found_resource());
            };
            let version = query_value(query, "api-version");
            let query = strip_param(query, "api-version");
            let deployment_missing = |d: &str| {
                reply(
                    StatusCode::NOT_FOUND,
                    json!({"error":{"code":"DeploymentNotFound","message":format!("The API deployment {d} for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.")}}),
                )
            };
            if let Some(v1) = rest.strip_prefix("v1/") {
                // The v1 surface names the deployment in the body's model.
                if let Some(model) = body_model(body) {
                    if !deployments.contains(&model) {
                        return Err(deployment_missing(&model));
                    }
                }
                return Ok(Translated {
                    path: format!("/v1/{v1}"),
                    query,
                });
            }
            if version.as_deref() != Some(api_version.as_str()) {
                return Err(reply(
                    StatusCode::NOT_FOUND,
                    json!({"error":{"code":"404","message":"Resource not found"}}),
                ));
            }
            if let Some(d) = rest.strip_prefix("deployments/") {
                let Some((name, api)) = d.split_once('/') else {
                    return Err(not_found_resource());
                };
                if !deployments.iter().any(|x| x == name) {
                    return Err(deployment_missing(name));
                }
                return Ok(Translated {
                    path: format!("/v1/{api}"),
                    query,
                });
            }
            Ok(Translated {
                path: format!("/v1/{rest}"),
                query,
            })
        }
        MockCloud::Bedrock {
            api_key,
            sigv4,
            models,
        } => {
            let authed = match (bearer(), sigv4) {
                (Some(k), _) => api_key.as_deref() == Some(k),
                (None, Some((creds, region))) => {
                    let now = SystemTime::now();
                    let skew = Duration::from_secs(300);
                    if let Err(why) =
                        super::sigv4::verify(parts, body, creds, region, "bedrock", now, skew)
                    {
                        return Err(reply(
                            StatusCode::FORBIDDEN,
                            json!({"message": format!("The request signature we calculated does not match the signature you provided: {why}")}),
                        ));
                    }
                    true
                }
                (None, None) => false,
            };
            if !authed {
                return Err(reply(
                    StatusCode::FORBIDDEN,
                    json!({"message":"The security token included in the request is invalid."}),
                ));
            }
            let Some(rest) = path.strip_prefix("/openai/v1/") else {
                return Err(reply(StatusCode::NOT_FOUND, json!({"message":"Not Found"})));
            };
            known_model(models, body)?;
            Ok(Translated {
                path: format!("/v1/{rest}"),
                query: query.to_owned(),
            })
        }
        MockCloud::Vertex {
            project,
            location,
            models,
            ..
        } => {
            let Some(issuer) = issuer else {
                return Err(not_found_resource());
            };
            if path == "/token" {
                if parts.method != http::Method::POST
                    || header("content-type") != Some("application/x-www-form-urlencoded")
                {
                    return Err(reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error":"invalid_request","error_description":"POST a form"}),
                    ));
                }
                let (status, answer) = issuer.issue(body);
                return Err(reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    answer,
                ));
            }
            if bearer().is_none_or(|t| !issuer.accepts(t)) {
                return Err(reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED"}}),
                ));
            }
            let prefix = format!("/v1/projects/{project}/locations/{location}/endpoints/openapi/");
            let Some(rest) = path.strip_prefix(&prefix) else {
                return Err(reply(
                    StatusCode::NOT_FOUND,
                    json!({"error":{"code":404,"message":"The requested URL was not found on this server.","status":"NOT_FOUND"}}),
                ));
            };
            known_model(models, body)?;
            Ok(Translated {
                path: format!("/v1/{rest}"),
                query: query.to_owned(),
            })
        }
    }
}

/// 400 unless the body's model (if it names one) is one the cloud has.
fn known_model(models: &[String], body: &Bytes) -> Result<(), Answered> {
    match body_model(body) {
        Some(m) if !models.contains(&m) => Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error":{"message":format!("The provided model identifier is invalid: {m}"),"type":"invalid_request_error","code":"model_not_found","param":"model"}}),
        )),
        _ => Ok(()),
    }
}

fn not_found_resource() -> Answered {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error":{"code":"404","message":"Resource not found"}}),
    )
}

fn body_model(body: &Bytes) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("model")?.as_str().map(str::to_owned)
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

fn strip_param(query: &str, key: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(key))
        .collect::<Vec<_>>()
        .join("&")
}
