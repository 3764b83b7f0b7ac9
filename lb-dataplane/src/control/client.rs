//! One client of the control socket, as its own task: it reads the request line
//! (bounded in size and in time), answers what it can without the director's
//! state (a malformed request, a protocol version it does not speak), hands every
//! other request to the task that owns that state and writes the answer back
//! (bounded in time). A slow or idle client therefore only ever holds up itself.

use std::time::Duration;

use lb_config::api::{Command, Request, Response, VERSION};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// A well-formed request on its way to the state owner, with where its answer goes.
#[derive(Debug)]
pub struct Pending {
    /// What the client asks.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// What a client is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, its newline not counted.
    pub max_request: usize,
    /// Time from the connection to the end of the request line.
    pub request_timeout: Duration,
    /// Time to write the whole response.
    pub write_timeout: Duration,
}

impl Limits {
    /// The limits of the director's control socket (see docs/control-protocol.md).
    pub const CONTROL: Limits = Limits {
        max_request: 1 << 20,
        request_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
    };
}

/// The request line as read.
enum Line {
    Complete(Vec<u8>),
    TooLarge,
    /// The client closed without sending anything.
    Empty,
}

/// Serves one connection: one request line, one response line, then close.
/// Returns a one-line description of what went wrong with the client, if anything.
pub async fn serve<S>(stream: S, owner: mpsc::Sender<Pending>, limits: Limits) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut trouble = None;
    let read = read_line(read, limits.max_request);
    let response = match timeout(limits.request_timeout, read).await {
        Err(_) => {
            let message = format!(
                "no complete request within {} ms",
                limits.request_timeout.as_millis()
            );
            trouble = Some(message.clone());
            Response::error(message)
        }
        Ok(Err(e)) => return Err(format!("read: {e}")),
        Ok(Ok(Line::Empty)) => return Ok(()),
        Ok(Ok(Line::TooLarge)) => {
            let message = format!("request too large (limit {} bytes)", limits.max_request);
            trouble = Some(message.clone());
            Response::error(message)
        }
        Ok(Ok(Line::Complete(line))) => match parse(&line) {
            Ok(command) => ask(&owner, command).await,
            Err(response) => response,
        },
    };
    let mut text = serde_json::to_string(&response).map_err(|e| format!("response: {e}"))?;
    text.push('\n');
    let send = async {
        write.write_all(text.as_bytes()).await?;
        write.shutdown().await
    };
    match timeout(limits.write_timeout, send).await {
        Err(_) => return Err("client did not take its response in time".to_owned()),
        Ok(Err(e)) => return Err(format!("write: {e}")),
        Ok(Ok(())) => {}
    }
    trouble.map_or(Ok(()), Err)
}

/// Reads up to and including the first newline, refusing a line longer than
/// `max` bytes without reading further than one byte past it.
async fn read_line<R: AsyncRead + Unpin>(read: R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    BufReader::new(read.take(limit))
        .read_until(b'\n', &mut line)
        .await?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > max {
        return Ok(Line::TooLarge);
    } else if line.is_empty() {
        return Ok(Line::Empty);
    }
    Ok(Line::Complete(line))
}

/// The command of a request line, or the answer to a request that has none.
fn parse(line: &[u8]) -> Result<Command, Response> {
    match serde_json::from_slice::<Request>(line) {
        Err(e) => Err(Response::error(format!("malformed request: {e}"))),
        Ok(r) if r.version != VERSION => Err(Response::error(format!(
            "protocol version {} not supported (this director speaks {VERSION})",
            r.version
        ))),
        Ok(r) => Ok(r.command),
    }
}

async fn ask(owner: &mpsc::Sender<Pending>, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if owner.send(Pending { command, reply }).await.is_err() {
        return Response::error("the director is stopping");
    }
    answer
        .await
        .unwrap_or_else(|_| Response::error("the director is stopping"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::UnixStream;
    use tokio::task::JoinHandle;

    const TEST_LIMITS: Limits = Limits {
        max_request: 64,
        request_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
    };

    /// A state owner that answers every request with `Zeroed`, counting them.
    fn owner() -> (mpsc::Sender<Pending>, JoinHandle<usize>) {
        let (tx, mut rx) = mpsc::channel::<Pending>(8);
        let task = tokio::spawn(async move {
            let mut answered = 0;
            while let Some(p) = rx.recv().await {
                answered += 1;
                let _ = p.reply.send(Response::Zeroed);
            }
            answered
        });
        (tx, task)
    }

    /// Connects a client to a served connection.
    fn connect(owner: &mpsc::Sender<Pending>) -> (UnixStream, JoinHandle<Result<(), String>>) {
        let (client, server) = UnixStream::pair().unwrap();
        let task = tokio::spawn(serve(server, owner.clone(), TEST_LIMITS));
        (client, task)
    }

    async fn response_line(client: UnixStream) -> String {
        let mut line = String::new();
        BufReader::new(client).read_line(&mut line).await.unwrap();
        line
    }

    fn request(command: &str) -> String {
        format!("{{\"version\":{VERSION},\"command\":\"{command}\"}}\n")
    }

    #[tokio::test]
    async fn a_request_is_answered_by_the_owner() {
        let (tx, answered) = owner();
        let (mut client, served) = connect(&tx);
        client.write_all(request("zero").as_bytes()).await.unwrap();
        let line = response_line(client).await;
        assert_eq!(
            serde_json::from_str::<Response>(&line).unwrap(),
            Response::Zeroed
        );
        assert_eq!(served.await.unwrap(), Ok(()));
        drop(tx);
        assert_eq!(answered.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn malformed_and_foreign_requests_never_reach_the_owner() {
        let (tx, answered) = owner();
        let (mut client, _) = connect(&tx);
        client.write_all(b"{not json\n").await.unwrap();
        assert!(response_line(client).await.contains("malformed request"));
        let (mut client, _) = connect(&tx);
        let foreign = format!("{{\"version\":{},\"command\":\"zero\"}}\n", VERSION + 1);
        client.write_all(foreign.as_bytes()).await.unwrap();
        assert!(response_line(client).await.contains("not supported"));
        drop(tx);
        assert_eq!(answered.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_and_closed() {
        let (tx, _answered) = owner();
        let (mut client, served) = connect(&tx);
        // Exactly the limit passes (as JSON it is malformed, which proves it was read).
        client.write_all(&[b'x'; 64]).await.unwrap();
        client.write_all(b"\n").await.unwrap();
        assert!(response_line(client).await.contains("malformed request"));
        let (mut client, served_long) = connect(&tx);
        client.write_all(&[b'x'; 65]).await.unwrap();
        let line = response_line(client).await;
        assert_eq!(
            serde_json::from_str::<Response>(&line).unwrap(),
            Response::error("request too large (limit 64 bytes)")
        );
        assert_eq!(served.await.unwrap(), Ok(()));
        assert_eq!(
            served_long.await.unwrap(),
            Err("request too large (limit 64 bytes)".to_owned())
        );
    }

    #[tokio::test]
    async fn an_idle_client_is_closed_after_the_timeout() {
        let (tx, _answered) = owner();
        let (client, served) = connect(&tx);
        let started = std::time::Instant::now();
        let line = response_line(client).await;
        let waited = started.elapsed();
        assert!(line.contains("no complete request within 300 ms"), "{line}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        assert!(served.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn idle_and_slow_clients_do_not_delay_another() {
        let (tx, _answered) = owner();
        let idle: Vec<_> = (0..10).map(|_| connect(&tx)).collect();
        let (mut slow, _) = connect(&tx);
        slow.write_all(b"{").await.unwrap();
        let started = std::time::Instant::now();
        let (mut client, _) = connect(&tx);
        client.write_all(request("zero").as_bytes()).await.unwrap();
        let line = response_line(client).await;
        assert!(line.contains("zeroed"), "{line}");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        drop(idle);
    }

    #[tokio::test]
    async fn a_client_closing_at_once_is_no_error() {
        let (tx, _answered) = owner();
        let (client, served) = connect(&tx);
        drop(client);
        assert_eq!(served.await.unwrap(), Ok(()));
    }
}
