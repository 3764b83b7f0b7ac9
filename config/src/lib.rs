//! The operator's configuration of the director: the YAML model and its
//! validation, the runtime edits lb-ctl sends, and the control protocol.
//!
//! lb-core forwards packets and knows nothing of YAML or JSON; this crate gives
//! its types their written form and turns a validated [`Config`] into the
//! [`lb_core::snapshot::Snapshot`] the workers forward with ([`build_snapshot`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod edit;
mod forms;
mod model;
mod snapshot;
mod validate;

pub use model::{
    Config, ConfigError, ConnectionsConfig, ControlConfig, Interface, LocalAddressConfig,
    NeighbourConfig, PortConfig, RealServerConfig, RouteConfig, ServiceConfig, VlanConfig,
    WorkersConfig, AUTO_CAPACITY_RANGE, AUTO_MEMORY_SHARE_PERCENT, BYTES_PER_CONNECTION_BUDGET,
    DEFAULT_SOCKET, MAX_WEIGHT,
};
pub use snapshot::{build_snapshot, snapshot_spec};
