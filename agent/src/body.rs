//! The response body the agent's HTTP listeners send, and the chain of body
//! stages an answer passes through on its way to the application.
//!
//! A stage takes a [`Body`] and gives a [`Body`]: it sees every data frame
//! and the end (clean or failed) of the body before it, and passes them on.
//! Today an answer is the gateway stream ([`crate::transport::forward`]),
//! then the audit tail, then the SSE error event for streaming clients
//! ([`crate::ingress::respond`]); a new stage slots in between without
//! touching the others.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

/// Response body type of the agent.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

/// The response body failed after the response started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What a stage sees of the body before it.
#[derive(Debug)]
pub enum Event {
    /// A chunk of data.
    Data(Bytes),
    /// The body ended cleanly.
    End,
    /// The body failed.
    Failed(BodyError),
}

/// What a stage does with an event. Each carries the data to pass on
/// (empty: nothing, as when a stage holds bytes back for later).
#[derive(Debug)]
pub enum Step {
    /// Pass this on and keep going.
    Data(Bytes),
    /// Pass this on, then end the body cleanly.
    End(Bytes),
    /// Pass this on, then fail the body.
    Fail(Bytes, BodyError),
}

/// A body stage: told of each event of the inner body in order, answers with
/// what the outer body carries. `on_event` is async so that a stage may wait
/// (the audit tail waits for a durable record before the clean end).
pub trait Stage: Send + 'static {
    /// Handles one event.
    fn on_event(&mut self, event: Event) -> impl std::future::Future<Output = Step> + Send;
}

/// How long a failing body waits after its last chunk before it fails.
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

enum Chain<S> {
    Running(Body, S),
    /// Passing on a stage's output; `bool`: a chunk was just passed on.
    Draining(Bytes, bool, Then, Option<(Body, S)>),
    Done,
}

enum Then {
    Continue,
    End,
    Fail(BodyError),
}

/// `inner` passed through `stage`.
pub fn chain<S: Stage>(inner: Body, stage: S) -> Body {
    let stream = futures_util::stream::unfold(Chain::Running(inner, stage), |state| async move {
        let mut state = state;
        loop {
            match state {
                Chain::Done => return None,
                Chain::Draining(chunk, passed, then, rest) => {
                    if !chunk.is_empty() {
                        return Some((
                            Ok(Frame::data(chunk)),
                            Chain::Draining(Bytes::new(), true, then, rest),
                        ));
                    }
                    match (then, rest) {
                        (Then::Continue, Some((body, stage))) => {
                            state = Chain::Running(body, stage);
                        }
                        (Then::Fail(e), _) => {
                            if passed {
                                // Let the server flush the last chunk (an SSE
                                // error event) before the failure cuts the
                                // connection: hyper drops unflushed data then.
                                tokio::time::sleep(FLUSH_GRACE).await;
                            }
                            return Some((Err(e), Chain::Done));
                        }
                        _ => return None,
                    }
                }
                Chain::Running(mut body, mut stage) => {
                    let event = match body.frame().await {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) if d.is_empty() => {
                                state = Chain::Running(body, stage);
                                continue;
                            }
                            Ok(d) => Event::Data(d),
                            // Trailers are not relayed.
                            Err(_) => {
                                state = Chain::Running(body, stage);
                                continue;
                            }
                        },
                        Some(Err(e)) => Event::Failed(e),
                        None => Event::End,
                    };
                    let ended = !matches!(event, Event::Data(_));
                    state = match stage.on_event(event).await {
                        // A stage cannot resume a body that has ended.
                        Step::Data(c) if ended => Chain::Draining(c, false, Then::End, None),
                        Step::Data(c) => {
                            Chain::Draining(c, false, Then::Continue, Some((body, stage)))
                        }
                        Step::End(c) => Chain::Draining(c, false, Then::End, None),
                        Step::Fail(c, e) => Chain::Draining(c, false, Then::Fail(e), None),
                    };
                }
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases data and counts what it saw.
    struct Upper(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Stage for Upper {
        async fn on_event(&mut self, event: Event) -> Step {
            let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match event {
                Event::Data(d) => {
                    seen.push("data".into());
                    Step::Data(Bytes::from(d.to_ascii_uppercase()))
                }
                Event::End => {
                    seen.push("end".into());
                    Step::End(Bytes::from_static(b"!"))
                }
                Event::Failed(e) => {
                    seen.push(format!("failed {e}"));
                    Step::Fail(Bytes::new(), e)
                }
            }
        }
    }

    fn source(parts: Vec<Result<&'static str, &'static str>>) -> Body {
        let s = futures_util::stream::iter(parts.into_iter().map(|p| match p {
            Ok(d) => Ok(Frame::data(Bytes::from_static(d.as_bytes()))),
            Err(e) => Err(BodyError(e.to_owned())),
        }));
        StreamBody::new(s).boxed_unsync()
    }

    async fn drain(mut b: Body) -> (String, Option<String>) {
        let mut out = String::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.push_str(&String::from_utf8_lossy(&f.into_data().unwrap_or_default())),
                Err(e) => return (out, Some(e.0)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn stages_see_every_event_in_order_and_compose() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = chain(
            chain(source(vec![Ok("ab"), Ok("c")]), Upper(log.clone())),
            Upper(log.clone()),
        );
        assert_eq!(drain(body).await, ("ABC!!".into(), None));
        assert_eq!(log.lock().unwrap().len(), 7);

        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = chain(source(vec![Ok("ab"), Err("cut")]), Upper(log.clone()));
        assert_eq!(drain(body).await, ("AB".into(), Some("cut".into())));
        assert_eq!(*log.lock().unwrap(), vec!["data", "failed cut"]);
    }
}
