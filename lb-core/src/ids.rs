//! Newtypes for the identifiers that cross module boundaries, so that a port
//! index can never be passed where a worker index is expected.

use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as an index into a dense table.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// A forwarding worker (one per data-plane core); also its queue index on every port.
    WorkerId(u16)
);
id_newtype!(
    /// A director port, in the order the configuration lists them.
    PortId(u16)
);
id_newtype!(
    /// A slot in the snapshot's real-server registry; pair with a serial to detect reuse.
    RealServerId(u32)
);
id_newtype!(
    /// A slot in the snapshot's service registry; pair with a serial to detect reuse.
    ServiceId(u32)
);
