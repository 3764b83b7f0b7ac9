//! Direct routing (ipvsadm `-g`, "Route"): the IP packet is untouched; only the
//! Ethernet destination changes, to the real server's MAC, which the worker sets
//! when it routes the frame to the real server's address.

use super::XmitError;
use crate::conn::Conn;

/// Client → server: nothing to rewrite at layer 3.
pub fn to_server(_conn: &Conn, _ip: &mut [u8]) -> Result<(), XmitError> {
    Ok(())
}
