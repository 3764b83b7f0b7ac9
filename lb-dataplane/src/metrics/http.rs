//! The `/metrics` HTTP endpoint: a minimal HTTP/1.1 responder, one response per
//! connection, each connection its own task. The exposition itself is rendered
//! by the control thread's state owner, asked over a channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::timeout;

/// Connections served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;
/// Time a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take its response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest request head accepted.
const MAX_REQUEST: usize = 8192;

/// A request for the exposition text, answered by the state owner.
pub type RenderRequest = oneshot::Sender<String>;

/// The bound `/metrics` endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    listener: std::net::TcpListener,
}

impl MetricsServer {
    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("control.metrics: cannot listen on {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control.metrics: {e}"))?;
        Ok(MetricsServer { listener })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and answers connections until the runtime stops; `render` asks for
    /// the body of `/metrics`. Must run inside a tokio runtime.
    pub async fn serve(self, render: mpsc::Sender<RenderRequest>) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("lb-director: control.metrics: {e}");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let render = render.clone();
                    tokio::spawn(async move {
                        answer(stream, &render).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors, typically: let connections close first.
                    eprintln!("lb-director: control.metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Reads one request head and answers it; a client that is too slow or sends too
/// much gets no answer or a 431, never more of the director's time.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    render: &mpsc::Sender<RenderRequest>,
) {
    let Ok(Some(head)) = timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let response = match head {
        Head::Complete(request_line) => respond(&request_line, render).await,
        Head::TooLarge => reply("431 Request Header Fields Too Large", ""),
    };
    let _ = timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
}

enum Head {
    /// The request line of a whole head.
    Complete(String),
    TooLarge,
}

/// Reads until the head is complete (up to the blank line); `None` when the
/// client closes or fails first.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Head> {
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        request.extend_from_slice(&buf[..n]);
        if let Some(line) = request_line(&request) {
            return Some(Head::Complete(line.to_owned()));
        }
        if request.len() > MAX_REQUEST {
            return Some(Head::TooLarge);
        }
    }
}

/// The request line, once the whole head (up to the blank line) has arrived.
fn request_line(request: &[u8]) -> Option<&str> {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| request.windows(2).position(|w| w == b"\n\n"))?;
    let head = std::str::from_utf8(&request[..end]).ok().unwrap_or("");
    Some(head.lines().next().unwrap_or(""))
}

async fn respond(request_line: &str, render: &mpsc::Sender<RenderRequest>) -> Vec<u8> {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => match exposition(render).await {
            Some(body) => reply("200 OK", &body),
            None => reply("503 Service Unavailable", "the director is stopping\n"),
        },
        ("HEAD", "/metrics") => reply("200 OK", ""),
        ("GET" | "HEAD", "/") => reply("200 OK", "lb-director: Prometheus metrics at /metrics\n"),
        ("GET" | "HEAD", _) => reply("404 Not Found", "not found\n"),
        _ => reply("405 Method Not Allowed", "only GET\n"),
    }
}

async fn exposition(render: &mpsc::Sender<RenderRequest>) -> Option<String> {
    let (reply, text) = oneshot::channel();
    render.send(reply).await.ok()?;
    text.await.ok()
}

fn reply(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// A server on a free port whose exposition is `lb_config_generation 1`.
    fn server() -> SocketAddr {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<RenderRequest>(4);
        tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send("lb_config_generation 1\n".to_owned());
            }
        });
        tokio::spawn(server.serve(tx));
        addr
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn answers_get_metrics() {
        let addr = server();
        let metrics = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            metrics,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 23\r\nConnection: close\r\n\r\nlb_config_generation 1\n"
        );
        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.contains("Content-Length: 0\r\n"), "{head}");
        let missing = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }

    #[tokio::test]
    async fn an_oversized_head_gets_431_while_idle_clients_wait() {
        let addr = server();
        let mut idle = Vec::new();
        for _ in 0..MAX_CLIENTS - 1 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let big = vec![b'x'; MAX_REQUEST + 1];
        let answer = exchange(addr, &big).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        drop(idle);
    }
}
