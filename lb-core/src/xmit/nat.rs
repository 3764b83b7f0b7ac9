//! NAT (ipvsadm `-m`, "Masq"): the destination becomes the real server; replies,
//! routed back through the director, get the VIP as their source.

use super::{rewrite_endpoints, v4, XmitError};
use crate::conn::Conn;

/// Client → server: destination becomes the real server.
pub fn to_server(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    rewrite_endpoints(ip, None, Some(v4(conn.dest)?))
}

/// Server → client: source becomes the VIP.
pub fn to_client(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    rewrite_endpoints(ip, Some(v4(conn.virt)?), None)
}
