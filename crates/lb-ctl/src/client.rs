//! Talking to the director over its Unix control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use lb_core::api::{Command, Request, Response, VERSION};

/// Sends `command` and returns the director's response; errors are one line.
pub fn call(socket: &Path, command: Command) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to the director at {}: {e}",
            socket.display()
        )
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("control socket: {e}"))?;
    let request = Request {
        version: VERSION,
        command,
    };
    let mut line = serde_json::to_string(&request).map_err(|e| format!("encoding request: {e}"))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending request: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| format!("reading response: {e}"))?;
    if reply.is_empty() {
        return Err("the director closed the connection without answering".into());
    }
    serde_json::from_str(&reply).map_err(|e| format!("malformed response from the director: {e}"))
}
