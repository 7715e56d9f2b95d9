//! One webhook POST over HTTP/1.1, plain or TLS (the system's root certificates), on a fresh
//! connection with one deadline for connecting, sending and reading the status line. The body
//! of the answer is not read: only its status counts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why an attempt failed; the metric label is [`Failure::reason`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// The endpoint answered, not with 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// No answer within --webhook-timeout.
    #[error("timed out")]
    Timeout,
    /// No connection (DNS, TCP or TLS).
    #[error("connect: {0}")]
    Connect(String),
    /// The exchange broke off.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Timeout => "timeout",
            Failure::Connect(_) => "connect",
            Failure::Other(_) => "other",
        }
    }
}

/// Posts webhooks.
pub(super) struct Client {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl Client {
    pub(super) fn new(timeout: Duration) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system root certificates: https:// webhooks will fail");
        }
        // ring is the one provider the workspace builds rustls with.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        }
    }

    /// POSTs `body` with `headers`; Ok on a 2xx answer.
    pub(super) async fn post(
        &self,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(url, headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn exchange(
        &self,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, Failure> {
        let host = url
            .host_str()
            .ok_or_else(|| Failure::Connect("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Failure::Connect("no port".into()))?;
        // `[::1]` in a URL is `::1` to connect to.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let mut req = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("assist-relay/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| Failure::Other(e.to_string()))?;
        if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|e| Failure::Connect(e.to_string()))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Connect(format!("TLS: {e}")))?;
            send(tls, req).await
        } else {
            send(tcp, req).await
        }
    }
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> Result<u16, Failure>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let answer = sender.send_request(req).await;
    driver.abort();
    let status = answer.map_err(|e| Failure::Other(e.to_string()))?.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(Failure::Status(status.as_u16()))
    }
}
