//! The accept loop of the agent's HTTP/1.1 listeners (the observability
//! listener on TCP, the admin socket on Unix): it accepts until cancelled,
//! serves each connection on its own task and, once cancelled, lets every
//! connection answer its in-flight request and close.
//!
//! Handlers find the peer's address in the request extensions as
//! [`axum::extract::ConnectInfo<L::Addr>`](axum::extract::ConnectInfo)
//! (a [`SocketAddr`] for TCP).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, warn};

/// Pause after a failed accept (out of file descriptors, say) before the next
/// try, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A bound socket that [`serve`] accepts connections from.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The peer's address, given to handlers as `ConnectInfo<Addr>`.
    type Addr: Clone + Send + Sync + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = TcpListener::accept(self).await?;
        // Requests and answers are small and written whole: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }
}

impl Listener for UnixListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> std::io::Result<(UnixStream, tokio::net::unix::SocketAddr)> {
        UnixListener::accept(self).await
    }
}

/// Serves `service` (an [`axum::Router`] or any tower service that answers
/// every request) on each connection `listener` accepts, until `shutdown`.
///
/// Connection tasks run on `tracker`; after `shutdown` no connection is
/// accepted, and open ones close once their in-flight request is answered
/// (the drain task is on `tracker` too, so waiting on it waits for them).
pub async fn serve<L, S, B>(
    mut listener: L,
    service: S,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) where
    L: Listener,
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (io, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let service = service.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let mut service = service.clone();
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(req).await
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), svc);
        let conn = graceful.watch(conn);
        tracker.spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "http connection ended with error");
            }
        });
    }
    tracker.spawn(graceful.shutdown());
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http_body_util::{BodyExt, Empty};

    /// One GET over a fresh HTTP/1.1 connection; the status and body.
    async fn get_over<S>(io: S, path: &str) -> (http::StatusCode, String)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn tcp_handlers_see_the_peer_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(serve(listener, router, shutdown.clone(), tracker.clone()));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let (status, body) = get_over(tcp, "/peer").await;
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, local.to_string());
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the loop and its connections end after shutdown");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_unix_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let router = axum::Router::new().route("/", get(|| async { "hi" }));
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(serve(listener, router, shutdown.clone(), tracker.clone()));
        // An idle keep-alive connection must not hold the drain up.
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(
            UnixStream::connect(&path).await.unwrap(),
        ))
        .await
        .unwrap();
        let client = tokio::spawn(conn);
        let req = http::Request::get("/")
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"hi"
        );
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("an idle connection closes on shutdown");
        tokio::time::timeout(Duration::from_secs(5), client)
            .await
            .expect("the server closed the connection")
            .unwrap()
            .unwrap();
        assert!(
            UnixStream::connect(&path).await.is_err(),
            "no longer accepting"
        );
    }
}
