//! The mock's API surface: which method and path does what, the checks a
//! request must pass (required fields, known objects), and the answers, in
//! the shapes of the public OpenAI API reference (and Anthropic's Messages
//! API for `POST /v1/messages`). Every error is one [`ApiError`], rendered
//! in one place as OpenAI-style (or Anthropic-style) error JSON.

use std::sync::{Arc, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::multipart::{self, Part};
use super::store::{Objects, StoredFile, StoredUpload, WithItems};
use super::{full, pieces, stream_frames, MockOptions, State};
use crate::ingress::Body;

/// A 1×1 PNG: what every generated or edited image is.
const TINY_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// The models the mock serves.
const MODELS: [&str; 2] = ["mock-gpt", "mock-embed"];

const FILE_PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

const BATCH_ENDPOINTS: [&str; 5] = [
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
];

/// A request as the router sees it.
pub(super) struct Request<'a> {
    pub(super) method: &'a Method,
    pub(super) path: &'a str,
    pub(super) query: &'a str,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a Bytes,
}

/// Why a request was refused.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
    anthropic: bool,
}

type Reply = Result<http::Response<Body>, ApiError>;

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
            anthropic: false,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("No {kind} found with id '{id}'."),
        )
    }

    fn missing(field: &str) -> Self {
        Self::bad(format!("Missing required parameter: '{field}'.")).param(field)
    }

    fn param(mut self, p: &str) -> Self {
        self.param = Some(p.to_owned());
        self
    }

    fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    pub(super) fn unauthorized(message: &str, anthropic: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, message).code("invalid_api_key");
        e.anthropic = anthropic;
        e
    }

    /// The error as the client sees it.
    pub(super) fn into_response(self) -> http::Response<Body> {
        if self.anthropic {
            let kind = match self.status {
                StatusCode::UNAUTHORIZED => "authentication_error",
                StatusCode::NOT_FOUND => "not_found_error",
                StatusCode::INTERNAL_SERVER_ERROR => "api_error",
                _ => "invalid_request_error",
            };
            return full(
                self.status,
                json!({"type":"error","error":{"type":kind,"message":self.message}}),
            );
        }
        let kind = if self.status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        full(
            self.status,
            json!({"error":{"message":self.message,"type":kind,"param":self.param,"code":self.code}}),
        )
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

fn ok(v: Value) -> Reply {
    Ok(full(StatusCode::OK, v))
}

/// Runs `f` on the stored objects; the lock is never held across an await.
fn with<T>(
    state: &State,
    f: impl FnOnce(&mut Objects) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut o: MutexGuard<'_, Objects> = state
        .objects
        .lock()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "mock state poisoned"))?;
    f(&mut o)
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("The request body must be a JSON object.")),
        Err(e) => Err(ApiError::bad(format!(
            "We could not parse the JSON body of your request: {e}"
        ))),
    }
}

fn required<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a Value, ApiError> {
    m.get(field)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ApiError::missing(field))
}

fn required_str<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    required(m, field)?
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad(format!("'{field}' must be a non-empty string.")).param(field))
}

fn optional_str<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad(format!("'{field}' must be a string.")).param(field)),
    }
}

fn metadata(m: &Map<String, Value>) -> Result<Value, ApiError> {
    match m.get("metadata") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(ApiError::bad("'metadata' must be an object.").param("metadata")),
    }
}

fn flag(m: &Map<String, Value>, field: &str) -> bool {
    m.get(field).and_then(Value::as_bool) == Some(true)
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// A cursor page of `items` (oldest first) as `limit`, `after` and `order`
/// ask, newest first unless `order=asc`.
fn list(mut items: Vec<Value>, query: &str) -> Reply {
    let limit = match query_param(query, "limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(
                    ApiError::bad("'limit' must be an integer from 1 to 100.").param("limit")
                )
            }
        },
    };
    if query_param(query, "order") != Some("asc") {
        items.reverse();
    }
    if let Some(after) = query_param(query, "after") {
        if let Some(i) = items.iter().position(|v| v["id"] == after) {
            items.drain(..=i);
        }
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    let first = items
        .first()
        .map(|v| v["id"].clone())
        .unwrap_or(Value::Null);
    let last = items.last().map(|v| v["id"].clone()).unwrap_or(Value::Null);
    ok(json!({"object":"list","data":items,"first_id":first,"last_id":last,"has_more":has_more}))
}

fn deleted(id: &str, object: &str) -> Reply {
    ok(json!({"id":id,"object":object,"deleted":true}))
}

fn form(req: &Request<'_>) -> Result<Vec<Part>, ApiError> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(ct)
        .ok_or_else(|| ApiError::bad("The request must be multipart/form-data with a boundary."))?;
    multipart::parse(req.body, &boundary).map_err(ApiError::bad)
}

fn field<'a>(parts: &'a [Part], name: &str) -> Option<&'a Part> {
    parts.iter().find(|p| p.name == name)
}

fn form_text<'a>(parts: &'a [Part], name: &str) -> Result<&'a str, ApiError> {
    field(parts, name)
        .and_then(Part::text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing(name))
}

fn form_file<'a>(parts: &'a [Part], name: &str) -> Result<&'a Part, ApiError> {
    field(parts, name)
        .filter(|p| p.filename.is_some())
        .ok_or_else(|| ApiError::missing(name))
}

/// Answers `req`; the caller has recorded it and checked its key.
pub(super) fn route(
    req: &Request<'_>,
    state: &Arc<State>,
    opts: &MockOptions,
) -> http::Response<Body> {
    let segs: Vec<&str> = match req.path.strip_prefix("/v1/") {
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(),
    };
    let m = req.method;
    let text = format!("Hello from the mock provider in {}.", opts.label);
    let r = match (m, segs.as_slice()) {
        (&Method::GET, ["models"]) => ok(json!({"object":"list","data":
            MODELS.iter().map(|id| json!({"id":id,"object":"model","created":1_700_000_000,"owned_by":opts.label})).collect::<Vec<_>>()})),
        (&Method::GET, ["models", id]) if MODELS.contains(id) => {
            ok(json!({"id":id,"object":"model","created":1_700_000_000,"owned_by":opts.label}))
        }
        (&Method::GET, ["models", id]) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The model '{id}' does not exist"),
        )
        .param("model")
        .code("model_not_found")),
        (&Method::POST, ["chat", "completions"]) => chat_create(req, state, opts, &text),
        (&Method::GET, ["chat", "completions"]) => with(state, |o| {
            Ok(o.chat_completions
                .iter()
                .map(|c| c.object.clone())
                .collect())
        })
        .and_then(|i| list(i, req.query)),
        (&Method::GET, ["chat", "completions", id]) => with(state, |o| {
            o.chat_completions
                .get(id)
                .map(|c| c.object.clone())
                .ok_or_else(|| ApiError::not_found("chat completion", id))
        })
        .and_then(ok),
        (&Method::DELETE, ["chat", "completions", id]) => with(state, |o| {
            o.chat_completions
                .remove(id)
                .ok_or_else(|| ApiError::not_found("chat completion", id))
        })
        .and_then(|_| deleted(id, "chat.completion.deleted")),
        (&Method::GET, ["chat", "completions", id, "messages"]) => with(state, |o| {
            o.chat_completions
                .get(id)
                .map(|c| c.items.clone())
                .ok_or_else(|| ApiError::not_found("chat completion", id))
        })
        .and_then(|i| list(i, &format!("order=asc&{}", req.query))),
        (&Method::POST, ["completions"]) => completions(req, state, opts, &text),
        (&Method::POST, ["embeddings"]) => embeddings(req),
        (&Method::POST, ["moderations"]) => moderations(req),
        (&Method::POST, ["responses"]) => responses_create(req, state, opts, &text),
        (&Method::GET, ["responses", id]) => with(state, |o| {
            o.responses
                .get(id)
                .map(|r| r.object.clone())
                .ok_or_else(|| ApiError::not_found("response", id))
        })
        .and_then(ok),
        (&Method::DELETE, ["responses", id]) => with(state, |o| {
            o.responses
                .remove(id)
                .ok_or_else(|| ApiError::not_found("response", id))
        })
        .and_then(|_| deleted(id, "response.deleted")),
        (&Method::POST, ["responses", id, "cancel"]) => with(state, |o| {
            let r = o
                .responses
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("response", id))?;
            if r.object["background"] != true {
                return Err(ApiError::bad("Only background responses can be cancelled."));
            }
            if r.object["status"] == "queued" || r.object["status"] == "in_progress" {
                r.object["status"] = json!("cancelled");
            }
            Ok(r.object.clone())
        })
        .and_then(ok),
        (&Method::GET, ["responses", id, "input_items"]) => with(state, |o| {
            o.responses
                .get(id)
                .map(|r| r.items.clone())
                .ok_or_else(|| ApiError::not_found("response", id))
        })
        .and_then(|i| list(i, req.query)),
        (&Method::POST, ["conversations"]) => conversations_create(req, state),
        (&Method::GET, ["conversations", id]) => with(state, |o| {
            o.conversations
                .get(id)
                .map(|c| c.object.clone())
                .ok_or_else(|| ApiError::not_found("conversation", id))
        })
        .and_then(ok),
        (&Method::POST, ["conversations", id]) => {
            let body = json_object(req.body);
            body.and_then(|b| {
                let md = metadata(&b)?;
                required(&b, "metadata")?;
                with(state, |o| {
                    let c = o
                        .conversations
                        .get_mut(id)
                        .ok_or_else(|| ApiError::not_found("conversation", id))?;
                    c.object["metadata"] = md;
                    Ok(c.object.clone())
                })
            })
            .and_then(ok)
        }
        (&Method::DELETE, ["conversations", id]) => with(state, |o| {
            o.conversations
                .remove(id)
                .ok_or_else(|| ApiError::not_found("conversation", id))
        })
        .and_then(|_| deleted(id, "conversation.deleted")),
        (&Method::GET, ["conversations", id, "items"]) => with(state, |o| {
            o.conversations
                .get(id)
                .map(|c| c.items.clone())
                .ok_or_else(|| ApiError::not_found("conversation", id))
        })
        .and_then(|i| list(i, req.query)),
        (&Method::POST, ["conversations", id, "items"]) => conversation_items_add(req, state, id),
        (&Method::POST, ["files"]) => files_create(req, state),
        (&Method::GET, ["files"]) => with(state, |o| {
            let purpose = query_param(req.query, "purpose");
            Ok(o.files
                .iter()
                .filter(|f| purpose.is_none_or(|p| f.object["purpose"] == p))
                .map(|f| f.object.clone())
                .collect())
        })
        .and_then(|i| list(i, req.query)),
        (&Method::GET, ["files", id]) => with(state, |o| {
            o.files
                .get(id)
                .map(|f| f.object.clone())
                .ok_or_else(|| ApiError::not_found("file", id))
        })
        .and_then(ok),
        (&Method::GET, ["files", id, "content"]) => with(state, |o| {
            o.files
                .get(id)
                .map(|f| f.content.clone())
                .ok_or_else(|| ApiError::not_found("file", id))
        })
        .map(|b| binary(b, "application/octet-stream")),
        (&Method::DELETE, ["files", id]) => with(state, |o| {
            o.files
                .remove(id)
                .ok_or_else(|| ApiError::not_found("file", id))
        })
        .and_then(|_| deleted(id, "file")),
        (&Method::POST, ["uploads"]) => uploads_create(req, state),
        (&Method::POST, ["uploads", id, "parts"]) => uploads_part(req, state, id),
        (&Method::POST, ["uploads", id, "complete"]) => uploads_complete(req, state, id),
        (&Method::POST, ["uploads", id, "cancel"]) => with(state, |o| {
            let u = o
                .uploads
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("upload", id))?;
            if u.object["status"] != "pending" {
                return Err(ApiError::bad(format!(
                    "Upload '{id}' is already {}.",
                    u.object["status"].as_str().unwrap_or("closed")
                )));
            }
            u.object["status"] = json!("cancelled");
            u.parts.clear();
            Ok(u.object.clone())
        })
        .and_then(ok),
        (&Method::POST, ["batches"]) => batches_create(req, state),
        (&Method::GET, ["batches"]) => with(state, |o| Ok(o.batches.iter().cloned().collect()))
            .and_then(|i| list(i, req.query)),
        (&Method::GET, ["batches", id]) => with(state, |o| {
            o.batches
                .get(id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("batch", id))
        })
        .and_then(ok),
        (&Method::POST, ["batches", id, "cancel"]) => with(state, |o| {
            let b = o
                .batches
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("batch", id))?;
            if b["status"] != "cancelled" {
                let t = now();
                b["status"] = json!("cancelled");
                b["cancelling_at"] = json!(t);
                b["cancelled_at"] = json!(t);
            }
            Ok(b.clone())
        })
        .and_then(ok),
        (&Method::POST, ["vector_stores"]) => vector_stores_create(req, state),
        (&Method::GET, ["vector_stores"]) => with(state, |o| {
            Ok(o.vector_stores.iter().map(|v| v.object.clone()).collect())
        })
        .and_then(|i| list(i, req.query)),
        (&Method::GET, ["vector_stores", id]) => with(state, |o| {
            o.vector_stores
                .get(id)
                .map(|v| v.object.clone())
                .ok_or_else(|| ApiError::not_found("vector store", id))
        })
        .and_then(ok),
        (&Method::DELETE, ["vector_stores", id]) => with(state, |o| {
            o.vector_stores
                .remove(id)
                .ok_or_else(|| ApiError::not_found("vector store", id))
        })
        .and_then(|_| deleted(id, "vector_store.deleted")),
        (&Method::POST, ["vector_stores", id, "files"]) => vector_store_file_add(req, state, id),
        (&Method::GET, ["vector_stores", id, "files"]) => with(state, |o| {
            o.vector_stores
                .get(id)
                .map(|v| v.items.clone())
                .ok_or_else(|| ApiError::not_found("vector store", id))
        })
        .and_then(|i| list(i, req.query)),
        (&Method::POST, ["images", "generations"]) => images_generate(req),
        (&Method::POST, ["images", "edits"]) => images_edit(req),
        (&Method::POST, ["audio", "transcriptions"]) => audio_text(req, "transcribe"),
        (&Method::POST, ["audio", "translations"]) => audio_text(req, "translate"),
        (&Method::POST, ["audio", "speech"]) => speech(req, state, opts),
        (&Method::POST, ["messages"]) => {
            anthropic_messages(req, state, opts, &text).map_err(|mut e| {
                e.anthropic = true;
                e
            })
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({} {})", m, req.path),
        )
        .code("unknown_url")),
    };
    r.unwrap_or_else(ApiError::into_response)
}

fn binary(b: Bytes, content_type: &'static str) -> http::Response<Body> {
    use http_body_util::{BodyExt, Full};
    let mut r = http::Response::new(Full::new(b).map_err(|never| match never {}).boxed_unsync());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    Bytes::from(match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    })
}

fn sse_response(
    frames: Vec<Bytes>,
    gate_at: Option<usize>,
    state: &Arc<State>,
    opts: &MockOptions,
) -> Reply {
    Ok(stream_frames(
        opts,
        state.clone(),
        frames,
        gate_at,
        "text/event-stream; charset=utf-8",
    ))
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

fn chat_create(req: &Request<'_>, state: &Arc<State>, opts: &MockOptions, text: &str) -> Reply {
    let b = json_object(req.body)?;
    let model = required_str(&b, "model")?.to_owned();
    let messages = match required(&b, "messages")? {
        Value::Array(a) if !a.is_empty() => a,
        _ => return Err(ApiError::bad("'messages' must be a non-empty array.").param("messages")),
    };
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str);
        if !role.is_some_and(|r| ROLES.contains(&r)) {
            return Err(ApiError::bad(format!(
                "Invalid value for 'messages[{i}].role': expected one of {}.",
                ROLES.join(", ")
            ))
            .param(&format!("messages[{i}].role")));
        }
    }
    let id = new_id("chatcmpl-");
    let created = now();
    let echoed;
    let text = match opts.echo_split {
        Some(_) => {
            echoed = format!("You said: {}", last_user_text(messages));
            echoed.as_str()
        }
        None => text,
    };
    if opts.echo_split.is_some() && b.get("tools").is_some_and(Value::is_array) {
        return echo_tool_call(&b, &model, &id, created, text, state, opts);
    }
    if flag(&b, "store") {
        let object = json!({"id":id,"object":"chat.completion","created":created,"model":model,
            "choices":[{"index":0,"message":{"role":"assistant","content":text,"refusal":null},"finish_reason":"stop","logprobs":null}],
            "usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17},
            "metadata":metadata(&b)?});
        let items = messages
            .iter()
            .enumerate()
            .map(|(i, msg)| {
                let mut msg = msg.clone();
                msg["id"] = json!(format!("{id}-{i}"));
                msg
            })
            .collect();
        with(state, |o| {
            o.chat_completions
                .insert(id.clone(), WithItems { object, items });
            Ok(())
        })?;
    }
    if flag(&b, "stream") {
        let ps = pieces(opts, text);
        let n = ps.len();
        let mut frames: Vec<Bytes> = ps
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                let delta = if i == 0 {
                    json!({"role":"assistant","content":piece})
                } else {
                    json!({"content":piece})
                };
                sse(None, &json!({"id":id,"object":"chat.completion.chunk","created":created,"model":model,
                    "choices":[{"index":0,"delta":delta,"finish_reason":null}]}))
            })
            .collect();
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        return sse_response(frames, Some(n - 1), state, opts);
    }
    ok(
        json!({"id":id,"object":"chat.completion","created":created,"model":model,
        "choices":[{"index":0,"message":{"role":"assistant","content":text,"refusal":null},"finish_reason":"stop","logprobs":null}],
        "usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}),
    )
}

/// The text of the last user message: a string, or its text parts joined.
fn last_user_text(messages: &[Value]) -> String {
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The text of a Responses `input`: a string, or the last user item's
/// content (a string, or its text parts joined).
fn last_input_text(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => last_user_text(items),
        _ => String::new(),
    }
}

/// Echo mode with tools: the first tool is called with `{"text": text}`,
/// its arguments streamed in fragments (or whole, without `stream`).
fn echo_tool_call(
    b: &serde_json::Map<String, Value>,
    model: &str,
    id: &str,
    created: u64,
    text: &str,
    state: &Arc<State>,
    opts: &MockOptions,
) -> Reply {
    let name = b
        .get("tools")
        .and_then(|t| t[0]["function"]["name"].as_str())
        .unwrap_or("echo")
        .to_owned();
    let args = json!({ "text": text }).to_string();
    if !flag(b, "stream") {
        return ok(
            json!({"id":id,"object":"chat.completion","created":created,"model":model,
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":name,"arguments":args}}]},
                "finish_reason":"tool_calls","logprobs":null}]}),
        );
    }
    let ps = super::pieces(opts, &args);
    let mut frames: Vec<Bytes> = vec![sse(
        None,
        &json!({"id":id,"object":"chat.completion.chunk","created":created,"model":model,
        "choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[
            {"index":0,"id":"call_1","type":"function","function":{"name":name,"arguments":""}}]},"finish_reason":null}]}),
    )];
    frames.extend(ps.iter().map(|piece| {
        sse(None, &json!({"id":id,"object":"chat.completion.chunk","created":created,"model":model,
            "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":piece}}]},"finish_reason":null}]}))
    }));
    frames.push(sse(
        None,
        &json!({"id":id,"object":"chat.completion.chunk","created":created,"model":model,
        "choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
    ));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let n = frames.len();
    sse_response(frames, Some(n - 2), state, opts)
}

fn completions(req: &Request<'_>, state: &Arc<State>, opts: &MockOptions, text: &str) -> Reply {
    let b = json_object(req.body)?;
    let model = required_str(&b, "model")?.to_owned();
    required(&b, "prompt")?;
    let id = new_id("cmpl-");
    if flag(&b, "stream") {
        let ps = pieces(opts, text);
        let n = ps.len();
        let mut frames: Vec<Bytes> = ps
            .iter()
            .map(|piece| {
                sse(None, &json!({"id":id,"object":"text_completion","created":1_700_000_000,"model":model,
                    "choices":[{"index":0,"text":piece,"finish_reason":null}]}))
            })
            .collect();
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        return sse_response(frames, Some(n - 1), state, opts);
    }
    ok(
        json!({"id":id,"object":"text_completion","created":1_700_000_000,"model":model,
        "choices":[{"index":0,"text":text,"finish_reason":"stop"}]}),
    )
}

fn embeddings(req: &Request<'_>) -> Reply {
    let b = json_object(req.body)?;
    let model = required_str(&b, "model")?;
    let n = match required(&b, "input")? {
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::bad("'input' must not be empty.").param("input"))
        }
        Value::Array(a) => a.len(),
        Value::String(_) => 1,
        _ => return Err(ApiError::bad("'input' must be a string or an array.").param("input")),
    };
    let data: Vec<Value> = (0..n)
        .map(|i| json!({"object":"embedding","index":i,"embedding":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}))
        .collect();
    ok(
        json!({"object":"list","data":data,"model":model,"usage":{"prompt_tokens":3,"total_tokens":3}}),
    )
}

fn moderations(req: &Request<'_>) -> Reply {
    let b = json_object(req.body)?;
    let n = match required(&b, "input")? {
        Value::Array(a) if !a.is_empty() => a.len(),
        Value::String(_) => 1,
        _ => {
            return Err(
                ApiError::bad("'input' must be a string or a non-empty array.").param("input"),
            )
        }
    };
    let model = optional_str(&b, "model")?.unwrap_or("omni-moderation-latest");
    let names = [
        "harassment",
        "harassment/threatening",
        "hate",
        "hate/threatening",
        "illicit",
        "illicit/violent",
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "sexual/minors",
        "violence",
        "violence/graphic",
    ];
    let categories: Map<String, Value> = names
        .iter()
        .map(|c| ((*c).to_owned(), json!(false)))
        .collect();
    let scores: Map<String, Value> = names
        .iter()
        .map(|c| ((*c).to_owned(), json!(0.0001)))
        .collect();
    let applied: Map<String, Value> = names
        .iter()
        .map(|c| ((*c).to_owned(), json!(["text"])))
        .collect();
    let result = json!({"flagged":false,"categories":categories,"category_scores":scores,"category_applied_input_types":applied});
    ok(json!({"id":new_id("modr-"),"model":model,"results":vec![result; n]}))
}

/// The input of a Responses or Conversations request as stored items.
fn input_items(input: Option<&Value>, field: &str) -> Result<Vec<Value>, ApiError> {
    let items = match input {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![json!({"type":"message","role":"user",
            "content":[{"type":"input_text","text":s}]})],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(
                ApiError::bad(format!("'{field}' must be a string or an array of items."))
                    .param(field),
            )
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            let Some(obj) = item.as_object_mut() else {
                return Err(
                    ApiError::bad(format!("'{field}[{i}]' must be an object.")).param(field)
                );
            };
            if !obj.contains_key("type") && obj.contains_key("role") {
                obj.insert("type".into(), json!("message"));
            }
            if obj.get("type").and_then(Value::as_str).is_none() {
                return Err(ApiError::missing(&format!("{field}[{i}].type")));
            }
            if obj.get("type").and_then(Value::as_str) == Some("message") {
                if !obj
                    .get("role")
                    .and_then(Value::as_str)
                    .is_some_and(|r| ROLES.contains(&r))
                {
                    return Err(ApiError::missing(&format!("{field}[{i}].role")));
                }
                if let Some(Value::String(s)) = obj.get("content") {
                    let kind = if obj.get("role").and_then(Value::as_str) == Some("assistant") {
                        "output_text"
                    } else {
                        "input_text"
                    };
                    let s = s.clone();
                    obj.insert("content".into(), json!([{"type":kind,"text":s}]));
                }
                obj.entry("status").or_insert(json!("completed"));
            }
            obj.entry("id").or_insert_with(|| json!(new_id("msg_")));
            Ok(item)
        })
        .collect()
}

fn responses_create(
    req: &Request<'_>,
    state: &Arc<State>,
    opts: &MockOptions,
    text: &str,
) -> Reply {
    let b = json_object(req.body)?;
    let model = required_str(&b, "model")?.to_owned();
    let items = input_items(b.get("input"), "input")?;
    let previous = optional_str(&b, "previous_response_id")?;
    let conversation = match b.get("conversation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(c)) => Some(
            c.get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("conversation.id"))?
                .to_owned(),
        ),
        Some(_) => {
            return Err(
                ApiError::bad("'conversation' must be an id or an object.").param("conversation")
            )
        }
    };
    if previous.is_some() && conversation.is_some() {
        return Err(ApiError::bad(
            "Use either 'previous_response_id' or 'conversation', not both.",
        )
        .param("previous_response_id"));
    }
    let background = flag(&b, "background");
    let store = b.get("store").and_then(Value::as_bool) != Some(false);
    if background && !store {
        return Err(ApiError::bad("Background responses must be stored.").param("store"));
    }
    let stream = flag(&b, "stream");
    let echoed;
    let text = match opts.echo_split {
        Some(_) => {
            echoed = format!("You said: {}", last_input_text(b.get("input")));
            echoed.as_str()
        }
        None => text,
    };
    // A streamed answer is its deltas joined, so the stored text matches.
    let ps = pieces(opts, text);
    let answer = if stream { ps.concat() } else { text.to_owned() };
    let id = new_id("resp_");
    let msg_id = new_id("msg_");
    let created = now();
    let output_item = json!({"id":msg_id,"type":"message","status":"completed","role":"assistant",
        "content":[{"type":"output_text","text":answer,"annotations":[]}]});
    let mut response = json!({"id":id,"object":"response","created_at":created,"status":"completed",
        "background":background,"error":null,"incomplete_details":null,
        "instructions":b.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens":b.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "model":model,"output":[output_item.clone()],"parallel_tool_calls":true,
        "previous_response_id":previous,
        "conversation":conversation.as_ref().map(|c| json!({"id":c})),
        "store":store,"temperature":1.0,"top_p":1.0,"text":{"format":{"type":"text"}},
        "tool_choice":"auto","tools":[],"truncation":"disabled","metadata":metadata(&b)?,
        "usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,
                 "output_tokens_details":{"reasoning_tokens":0},"total_tokens":17}});
    if background {
        response["status"] = json!("in_progress");
        response["output"] = json!([]);
        response["usage"] = Value::Null;
    }
    with(state, |o| {
        if let Some(p) = previous {
            if !o.responses.contains(p) {
                return Err(
                    ApiError::bad(format!("Previous response with id '{p}' not found."))
                        .param("previous_response_id"),
                );
            }
        }
        if let Some(c) = &conversation {
            let conv = o
                .conversations
                .get_mut(c)
                .ok_or_else(|| ApiError::not_found("conversation", c).param("conversation"))?;
            conv.items.extend(items.iter().cloned());
            if !background {
                conv.items.push(output_item.clone());
            }
        }
        if store {
            o.responses.insert(
                id.clone(),
                WithItems {
                    object: response.clone(),
                    items: items.clone(),
                },
            );
        }
        Ok(())
    })?;
    if !stream {
        return ok(response);
    }
    if background {
        return Err(
            ApiError::bad("The mock does not stream background responses.").param("stream"),
        );
    }
    let mut start = response.clone();
    start["status"] = json!("in_progress");
    start["output"] = json!([]);
    start["usage"] = Value::Null;
    let mut seq = 0u64;
    let mut ev = |kind: &str, mut v: Value| {
        v["type"] = json!(kind);
        v["sequence_number"] = json!(seq);
        seq += 1;
        sse(Some(kind), &v)
    };
    let part = json!({"type":"output_text","text":"","annotations":[]});
    let mut item = output_item.clone();
    item["status"] = json!("in_progress");
    item["content"] = json!([]);
    let mut frames = vec![
        ev("response.created", json!({"response":start})),
        ev("response.in_progress", json!({"response":start})),
        ev(
            "response.output_item.added",
            json!({"output_index":0,"item":item}),
        ),
        ev(
            "response.content_part.added",
            json!({"item_id":msg_id,"output_index":0,"content_index":0,"part":part}),
        ),
    ];
    let first_delta = frames.len();
    for p in &ps {
        frames.push(ev(
            "response.output_text.delta",
            json!({"item_id":msg_id,"output_index":0,"content_index":0,"delta":p,"logprobs":[]}),
        ));
    }
    let gate_at = first_delta + ps.len() - 1;
    let full_text = answer;
    frames.push(ev(
        "response.output_text.done",
        json!({"item_id":msg_id,"output_index":0,"content_index":0,"text":full_text,"logprobs":[]}),
    ));
    frames.push(ev(
        "response.content_part.done",
        json!({"item_id":msg_id,"output_index":0,"content_index":0,
        "part":{"type":"output_text","text":full_text,"annotations":[]}}),
    ));
    frames.push(ev(
        "response.output_item.done",
        json!({"output_index":0,"item":output_item}),
    ));
    frames.push(ev("response.completed", json!({"response":response})));
    sse_response(frames, Some(gate_at), state, opts)
}

fn conversations_create(req: &Request<'_>, state: &Arc<State>) -> Reply {
    let b = if req.body.is_empty() {
        Map::new()
    } else {
        json_object(req.body)?
    };
    let items = input_items(b.get("items"), "items")?;
    if items.len() > 20 {
        return Err(ApiError::bad("'items' holds at most 20 items.").param("items"));
    }
    let id = new_id("conv_");
    let object =
        json!({"id":id,"object":"conversation","created_at":now(),"metadata":metadata(&b)?});
    with(state, |o| {
        o.conversations.insert(
            id.clone(),
            WithItems {
                object: object.clone(),
                items,
            },
        );
        Ok(())
    })?;
    ok(object)
}

fn conversation_items_add(req: &Request<'_>, state: &Arc<State>, id: &str) -> Reply {
    let b = json_object(req.body)?;
    let items = match required(&b, "items")? {
        v @ Value::Array(a) if !a.is_empty() => input_items(Some(v), "items")?,
        _ => return Err(ApiError::bad("'items' must be a non-empty array.").param("items")),
    };
    with(state, |o| {
        let c = o
            .conversations
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("conversation", id))?;
        c.items.extend(items.iter().cloned());
        Ok(())
    })?;
    let first = items.first().map(|v| v["id"].clone());
    let last = items.last().map(|v| v["id"].clone());
    ok(json!({"object":"list","data":items,"first_id":first,"last_id":last,"has_more":false}))
}

fn file_object(id: &str, bytes: usize, filename: &str, purpose: &str) -> Value {
    json!({"id":id,"object":"file","bytes":bytes,"created_at":now(),"filename":filename,
           "purpose":purpose,"status":"processed","status_details":null,"expires_at":null})
}

fn files_create(req: &Request<'_>, state: &Arc<State>) -> Reply {
    let parts = form(req)?;
    let purpose = form_text(&parts, "purpose")?;
    if !FILE_PURPOSES.contains(&purpose) {
        return Err(ApiError::bad(format!(
            "Invalid value for 'purpose': expected one of {}.",
            FILE_PURPOSES.join(", ")
        ))
        .param("purpose"));
    }
    let file = form_file(&parts, "file")?;
    let filename = file.filename.as_deref().unwrap_or("file");
    if purpose == "batch" && !filename.ends_with(".jsonl") {
        return Err(ApiError::bad("A batch input file must be a .jsonl file.").param("file"));
    }
    let id = new_id("file-");
    let object = file_object(&id, file.data.len(), filename, purpose);
    with(state, |o| {
        o.files.insert(
            id.clone(),
            StoredFile {
                object: object.clone(),
                content: file.data.clone(),
            },
        );
        Ok(())
    })?;
    ok(object)
}

fn uploads_create(req: &Request<'_>, state: &Arc<State>) -> Reply {
    let b = json_object(req.body)?;
    let filename = required_str(&b, "filename")?;
    let purpose = required_str(&b, "purpose")?;
    if !FILE_PURPOSES.contains(&purpose) {
        return Err(ApiError::bad("Invalid value for 'purpose'.").param("purpose"));
    }
    required_str(&b, "mime_type")?;
    let bytes = required(&b, "bytes")?
        .as_u64()
        .ok_or_else(|| ApiError::bad("'bytes' must be a non-negative integer.").param("bytes"))?;
    let id = new_id("upload_");
    let created = now();
    let object = json!({"id":id,"object":"upload","bytes":bytes,"created_at":created,"filename":filename,
        "purpose":purpose,"status":"pending","expires_at":created + 3600,"file":null});
    with(state, |o| {
        o.uploads.insert(
            id.clone(),
            StoredUpload {
                object: object.clone(),
                parts: Vec::new(),
            },
        );
        Ok(())
    })?;
    ok(object)
}

/// Parts one upload may hold; the mock keeps their bytes in memory.
const MAX_PARTS: usize = 1000;

fn uploads_part(req: &Request<'_>, state: &Arc<State>, id: &str) -> Reply {
    let parts = form(req)?;
    let data = field(&parts, "data").ok_or_else(|| ApiError::missing("data"))?;
    let part_id = new_id("part_");
    with(state, |o| {
        let u = o
            .uploads
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("upload", id))?;
        if u.object["status"] != "pending" {
            return Err(ApiError::bad(format!("Upload '{id}' is not pending.")));
        }
        if u.parts.len() >= MAX_PARTS {
            return Err(ApiError::bad(format!(
                "An upload holds at most {MAX_PARTS} parts."
            )));
        }
        u.parts.push((part_id.clone(), data.data.clone()));
        Ok(())
    })?;
    ok(json!({"id":part_id,"object":"upload.part","created_at":now(),"upload_id":id}))
}

fn uploads_complete(req: &Request<'_>, state: &Arc<State>, id: &str) -> Reply {
    let b = json_object(req.body)?;
    let ids: Vec<&str> = match required(&b, "part_ids")? {
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| ApiError::bad("'part_ids' must hold strings.").param("part_ids"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::bad("'part_ids' must be an array.").param("part_ids")),
    };
    with(state, |o| {
        let u = o
            .uploads
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("upload", id))?;
        if u.object["status"] != "pending" {
            return Err(ApiError::bad(format!("Upload '{id}' is not pending.")));
        }
        let mut content = Vec::new();
        for pid in &ids {
            let (_, data) = u.parts.iter().find(|(p, _)| p == pid).ok_or_else(|| {
                ApiError::bad(format!("Part '{pid}' is not part of upload '{id}'."))
                    .param("part_ids")
            })?;
            content.extend_from_slice(data);
        }
        if Some(content.len() as u64) != u.object["bytes"].as_u64() {
            return Err(ApiError::bad(format!(
                "The parts hold {} bytes but the upload was created for {}.",
                content.len(),
                u.object["bytes"]
            )));
        }
        let file_id = new_id("file-");
        let file = file_object(
            &file_id,
            content.len(),
            u.object["filename"].as_str().unwrap_or("file"),
            u.object["purpose"].as_str().unwrap_or("user_data"),
        );
        u.object["status"] = json!("completed");
        u.object["file"] = file.clone();
        u.parts.clear();
        let object = u.object.clone();
        o.files.insert(
            file_id,
            StoredFile {
                object: file,
                content: Bytes::from(content),
            },
        );
        Ok(object)
    })
    .and_then(ok)
}

fn batches_create(req: &Request<'_>, state: &Arc<State>) -> Reply {
    let b = json_object(req.body)?;
    let input = required_str(&b, "input_file_id")?;
    let endpoint = required_str(&b, "endpoint")?;
    if !BATCH_ENDPOINTS.contains(&endpoint) {
        return Err(ApiError::bad(format!(
            "Invalid value for 'endpoint': expected one of {}.",
            BATCH_ENDPOINTS.join(", ")
        ))
        .param("endpoint"));
    }
    if required_str(&b, "completion_window")? != "24h" {
        return Err(
            ApiError::bad("Invalid value for 'completion_window': expected '24h'.")
                .param("completion_window"),
        );
    }
    let md = metadata(&b)?;
    with(state, |o| {
        let file = o
            .files
            .get(input)
            .ok_or_else(|| ApiError::not_found("file", input).param("input_file_id"))?;
        if file.object["purpose"] != "batch" {
            return Err(ApiError::bad(format!("File '{input}' was not uploaded with purpose 'batch'."))
                .param("input_file_id"));
        }
        let total = file.content.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count();
        let id = new_id("batch_");
        let created = now();
        let batch = json!({"id":id,"object":"batch","endpoint":endpoint,"errors":null,"input_file_id":input,
            "completion_window":"24h","status":"validating","output_file_id":null,"error_file_id":null,
            "created_at":created,"in_progress_at":null,"expires_at":created + 86_400,"finalizing_at":null,
            "completed_at":null,"failed_at":null,"expired_at":null,"cancelling_at":null,"cancelled_at":null,
            "request_counts":{"total":total,"completed":0,"failed":0},"metadata":md});
        o.batches.insert(id, batch.clone());
        Ok(batch)
    })
    .and_then(ok)
}

fn vector_store_file(store: &str, file: &StoredFile) -> Value {
    json!({"id":file.object["id"],"object":"vector_store.file","usage_bytes":file.content.len(),
        "created_at":now(),"vector_store_id":store,"status":"completed","last_error":null,
        "chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":400}}})
}

fn refresh_counts(v: &mut WithItems) {
    let n = v.items.len();
    let bytes: u64 = v
        .items
        .iter()
        .filter_map(|f| f["usage_bytes"].as_u64())
        .sum();
    v.object["file_counts"] =
        json!({"in_progress":0,"completed":n,"failed":0,"cancelled":0,"total":n});
    v.object["usage_bytes"] = json!(bytes);
}

fn vector_stores_create(req: &Request<'_>, state: &Arc<State>) -> Reply {
    let b = json_object(req.body)?;
    let name = optional_str(&b, "name")?;
    let file_ids: Vec<&str> = match b.get("file_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| ApiError::bad("'file_ids' must hold strings.").param("file_ids"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad("'file_ids' must be an array.").param("file_ids")),
    };
    let md = metadata(&b)?;
    with(state, |o| {
        let id = new_id("vs_");
        let mut items = Vec::new();
        for f in &file_ids {
            let file = o.files.get(f).ok_or_else(|| ApiError::not_found("file", f).param("file_ids"))?;
            items.push(vector_store_file(&id, file));
        }
        let created = now();
        let mut vs = WithItems {
            object: json!({"id":id,"object":"vector_store","created_at":created,"name":name,"usage_bytes":0,
                "status":"completed","expires_after":null,"expires_at":null,"last_active_at":created,"metadata":md}),
            items,
        };
        refresh_counts(&mut vs);
        let object = vs.object.clone();
        o.vector_stores.insert(id, vs);
        Ok(object)
    })
    .and_then(ok)
}

fn vector_store_file_add(req: &Request<'_>, state: &Arc<State>, id: &str) -> Reply {
    let b = json_object(req.body)?;
    let file_id = required_str(&b, "file_id")?;
    with(state, |o| {
        let file = o
            .files
            .get(file_id)
            .ok_or_else(|| ApiError::not_found("file", file_id).param("file_id"))?;
        let item = vector_store_file(id, file);
        let vs = o
            .vector_stores
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("vector store", id))?;
        vs.items.retain(|f| f["id"] != file_id);
        vs.items.push(item.clone());
        refresh_counts(vs);
        Ok(item)
    })
    .and_then(ok)
}

fn image_count(n: Option<&Value>) -> Result<usize, ApiError> {
    match n {
        None | Some(Value::Null) => Ok(1),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad("'n' must be an integer from 1 to 10.").param("n")),
    }
}

fn images(n: usize) -> Reply {
    let data: Vec<Value> = (0..n).map(|_| json!({"b64_json":TINY_PNG})).collect();
    ok(json!({"created":now(),"data":data,
        "usage":{"input_tokens":10,"output_tokens":16,"total_tokens":26,"input_tokens_details":{"text_tokens":10,"image_tokens":0}}}))
}

fn images_generate(req: &Request<'_>) -> Reply {
    let b = json_object(req.body)?;
    required_str(&b, "prompt")?;
    images(image_count(b.get("n"))?)
}

fn images_edit(req: &Request<'_>) -> Reply {
    let parts = form(req)?;
    form_text(&parts, "prompt")?;
    if field(&parts, "image")
        .or_else(|| field(&parts, "image[]"))
        .is_none()
    {
        return Err(ApiError::missing("image"));
    }
    // A field that is not a number stays a non-number, so it is refused.
    let n = field(&parts, "n")
        .and_then(Part::text)
        .map(|t| t.parse::<u64>().map_or(Value::Bool(false), Value::from));
    images(image_count(n.as_ref())?)
}

fn audio_text(req: &Request<'_>, task: &str) -> Reply {
    let parts = form(req)?;
    form_file(&parts, "file")?;
    form_text(&parts, "model")?;
    let text = if task == "translate" {
        "This is the mock provider's translation."
    } else {
        "This is the mock provider's transcription."
    };
    let format = field(&parts, "response_format")
        .and_then(Part::text)
        .unwrap_or("json");
    match format {
        "json" => ok(json!({"text":text})),
        "verbose_json" => {
            ok(json!({"task":task,"language":"english","duration":1.0,"text":text,"segments":[]}))
        }
        "text" | "srt" | "vtt" => Ok(binary(
            Bytes::from(format!("{text}\n")),
            "text/plain; charset=utf-8",
        )),
        _ => Err(ApiError::bad("Invalid value for 'response_format'.").param("response_format")),
    }
}

fn speech(req: &Request<'_>, state: &Arc<State>, opts: &MockOptions) -> Reply {
    let b = json_object(req.body)?;
    required_str(&b, "model")?;
    required_str(&b, "input")?;
    required_str(&b, "voice")?;
    if let Some(f) = optional_str(&b, "response_format")? {
        if f != "mp3" {
            return Err(ApiError::bad("The mock speaks only mp3.").param("response_format"));
        }
    }
    // Silent MPEG frames: a frame header and zeros, in four chunks.
    let frames = (0..4)
        .map(|_| {
            let mut chunk = vec![0u8; 1024];
            chunk[..4].copy_from_slice(&[0xFF, 0xF3, 0x14, 0xC4]);
            Bytes::from(chunk)
        })
        .collect();
    Ok(stream_frames(
        opts,
        state.clone(),
        frames,
        None,
        "audio/mpeg",
    ))
}

fn anthropic_messages(
    req: &Request<'_>,
    state: &Arc<State>,
    opts: &MockOptions,
    text: &str,
) -> Reply {
    if req.headers.get("anthropic-version").is_none() {
        return Err(ApiError::bad("anthropic-version: header is required"));
    }
    let b = json_object(req.body)?;
    let model = required_str(&b, "model")?.to_owned();
    let max_tokens = required(&b, "max_tokens")?;
    if max_tokens.as_u64().unwrap_or(0) == 0 {
        return Err(ApiError::bad("max_tokens: must be a positive integer"));
    }
    let messages = match required(&b, "messages")? {
        Value::Array(a) if !a.is_empty() => a,
        _ => return Err(ApiError::bad("messages: at least one message is required")),
    };
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant")) {
            return Err(ApiError::bad(format!(
                "messages.{i}.role: must be 'user' or 'assistant'"
            )));
        }
        if !matches!(msg.get("content"), Some(Value::String(_) | Value::Array(_))) {
            return Err(ApiError::bad(format!(
                "messages.{i}.content: Field required"
            )));
        }
    }
    let id = new_id("msg_");
    let usage = json!({"input_tokens":9,"output_tokens":8});
    if !flag(&b, "stream") {
        return ok(
            json!({"id":id,"type":"message","role":"assistant","model":model,
            "content":[{"type":"text","text":text}],"stop_reason":"end_turn","stop_sequence":null,"usage":usage}),
        );
    }
    let ev = |kind: &str, mut v: Value| {
        v["type"] = json!(kind);
        sse(Some(kind), &v)
    };
    let mut frames = vec![
        ev(
            "message_start",
            json!({"message":{"id":id,"type":"message","role":"assistant","model":model,
            "content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}),
        ),
        ev(
            "content_block_start",
            json!({"index":0,"content_block":{"type":"text","text":""}}),
        ),
    ];
    let ps = pieces(opts, text);
    for p in &ps {
        frames.push(ev(
            "content_block_delta",
            json!({"index":0,"delta":{"type":"text_delta","text":p}}),
        ));
    }
    let gate_at = frames.len() - 1;
    frames.push(ev("content_block_stop", json!({"index":0})));
    frames.push(ev("message_delta", json!({"delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":8}})));
    frames.push(ev("message_stop", json!({})));
    sse_response(frames, Some(gate_at), state, opts)
}
