//! The IPVS TCP state machine (net/netfilter/ipvs/ip_vs_proto_tcp.c) and the
//! per-state timeouts.

use std::fmt;
use std::time::Duration;

use crate::wire::tcp::flags;

/// IPVS TCP connection states, in IPVS's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// NONE.
    None = 0,
    /// ESTABLISHED.
    Established,
    /// SYN_SENT.
    SynSent,
    /// SYN_RECV.
    SynRecv,
    /// FIN_WAIT.
    FinWait,
    /// TIME_WAIT.
    TimeWait,
    /// CLOSE.
    Close,
    /// CLOSE_WAIT.
    CloseWait,
    /// LAST_ACK.
    LastAck,
    /// LISTEN.
    Listen,
    /// SYNACK.
    SynAck,
}

impl TcpState {
    /// Every state, in table-column order.
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The name ipvsadm prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether IPVS counts the state in ActiveConn (else InActConn).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// Whether the handshake has not completed: the states a SYN flood fills
    /// the table with.
    pub fn is_half_open(self) -> bool {
        matches!(
            self,
            TcpState::None | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which IPVS transition table applies to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Input,
    /// Server → client (seen in NAT and FullNAT).
    Output,
    /// Client → server on a connection whose replies the director never sees
    /// (DR and TUN, until a first output packet shows up).
    InputOnly,
}

/// The event a TCP segment stands for, by IPVS's flag priority RST > SYN > FIN > ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// SYN set.
    Syn = 0,
    /// FIN set (no SYN, no RST).
    Fin = 1,
    /// ACK only.
    Ack = 2,
    /// RST set.
    Rst = 3,
}

impl TcpEvent {
    /// The event for a flag byte; `None` for a segment with none of the four flags.
    pub fn from_flags(f: u8) -> Option<TcpEvent> {
        if f & flags::RST != 0 {
            Some(TcpEvent::Rst)
        } else if f & flags::SYN != 0 {
            Some(TcpEvent::Syn)
        } else if f & flags::FIN != 0 {
            Some(TcpEvent::Fin)
        } else if f & flags::ACK != 0 {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    None as NO, SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; 11];

// Rows: syn, fin, ack, rst. Columns: NO ES SS SR FW TW CL CW LA LI SA.
const INPUT: [Row; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [Row; 4] = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [Row; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after `event` in `dir` from `state`.
pub fn next_state(state: TcpState, dir: Direction, event: TcpEvent) -> TcpState {
    let table = match dir {
        Direction::Input => &INPUT,
        Direction::Output => &OUTPUT,
        Direction::InputOnly => &INPUT_ONLY,
    };
    table[event as usize][state as usize]
}

/// Connection timeouts in seconds, per TCP state and for UDP and ICMP. Field names
/// are IPVS's state names; `tcp` and `tcpfin` are ipvsadm's names for
/// `established` and `fin_wait`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// NONE.
    pub none: u32,
    /// ESTABLISHED (`ipvsadm --set tcp`).
    pub established: u32,
    /// SYN_SENT.
    pub syn_sent: u32,
    /// SYN_RECV.
    pub syn_recv: u32,
    /// FIN_WAIT (`ipvsadm --set tcpfin`).
    pub fin_wait: u32,
    /// TIME_WAIT.
    pub time_wait: u32,
    /// CLOSE.
    pub close: u32,
    /// CLOSE_WAIT.
    pub close_wait: u32,
    /// LAST_ACK.
    pub last_ack: u32,
    /// LISTEN.
    pub listen: u32,
    /// SYNACK.
    pub synack: u32,
    /// UDP (`ipvsadm --set … udp`).
    pub udp: u32,
    /// ICMP.
    pub icmp: u32,
}

impl Default for Timeouts {
    /// Linux IPVS's defaults.
    fn default() -> Self {
        Timeouts {
            none: 2,
            established: 900,
            syn_sent: 120,
            syn_recv: 60,
            fin_wait: 120,
            time_wait: 120,
            close: 10,
            close_wait: 60,
            last_ack: 30,
            listen: 120,
            synack: 120,
            udp: 300,
            icmp: 60,
        }
    }
}

/// Longest timeout accepted (one day, more than any IPVS default by far).
pub const MAX_TIMEOUT_SECS: u32 = 86_400;

impl Timeouts {
    /// The timeout for a TCP state.
    pub fn tcp(&self, state: TcpState) -> Duration {
        let secs = match state {
            NO => self.none,
            ES => self.established,
            SS => self.syn_sent,
            SR => self.syn_recv,
            FW => self.fin_wait,
            TW => self.time_wait,
            CL => self.close,
            CW => self.close_wait,
            LA => self.last_ack,
            LI => self.listen,
            SA => self.synack,
        };
        Duration::from_secs(u64::from(secs))
    }

    /// The UDP timeout.
    pub fn udp(&self) -> Duration {
        Duration::from_secs(u64::from(self.udp))
    }

    /// `(field, problem)` for the first out-of-range value.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let fields = [
            ("none", self.none),
            ("established", self.established),
            ("syn_sent", self.syn_sent),
            ("syn_recv", self.syn_recv),
            ("fin_wait", self.fin_wait),
            ("time_wait", self.time_wait),
            ("close", self.close),
            ("close_wait", self.close_wait),
            ("last_ack", self.last_ack),
            ("listen", self.listen),
            ("synack", self.synack),
            ("udp", self.udp),
            ("icmp", self.icmp),
        ];
        for (name, secs) in fields {
            if secs == 0 || secs > MAX_TIMEOUT_SECS {
                return Err((
                    name,
                    format!("{secs} is not within 1..={MAX_TIMEOUT_SECS} seconds"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_priority_is_rst_syn_fin_ack() {
        assert_eq!(
            TcpEvent::from_flags(flags::RST | flags::SYN),
            Some(TcpEvent::Rst)
        );
        assert_eq!(
            TcpEvent::from_flags(flags::SYN | flags::ACK),
            Some(TcpEvent::Syn)
        );
        assert_eq!(
            TcpEvent::from_flags(flags::FIN | flags::ACK),
            Some(TcpEvent::Fin)
        );
        assert_eq!(
            TcpEvent::from_flags(flags::ACK | flags::PSH),
            Some(TcpEvent::Ack)
        );
        assert_eq!(TcpEvent::from_flags(flags::PSH), None);
    }

    #[test]
    fn a_nat_connection_walks_the_expected_states() {
        use Direction::{Input, Output};
        let steps = [
            (Input, TcpEvent::Syn, SR),
            (Output, TcpEvent::Syn, SR),
            (Input, TcpEvent::Ack, ES),
            (Input, TcpEvent::Fin, CW),
            (Output, TcpEvent::Fin, TW),
            (Input, TcpEvent::Ack, TW),
        ];
        let mut s = NO;
        for (dir, ev, want) in steps {
            s = next_state(s, dir, ev);
            assert_eq!(s, want, "after {dir:?} {ev:?}");
        }
    }

    /// The transition table exactly as the reference document prints it.
    const REFERENCE: &str = "
| INPUT | syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| INPUT | fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | TW |
| INPUT | ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| INPUT | rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | SR |
| OUTPUT | syn | SS | ES | SS | SR | SS | SS | SS | SS | SS | LI | SR |
| OUTPUT | fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW |
| OUTPUT | ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES |
| OUTPUT | rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL |
| INPUT_ONLY | syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| INPUT_ONLY | fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW |
| INPUT_ONLY | ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| INPUT_ONLY | rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL |
";

    /// A reference model: a map from (table, event, state) to next state, built by
    /// parsing the document's table rather than sharing the implementation's arrays.
    fn reference_model() -> std::collections::HashMap<(String, String, &'static str), &'static str>
    {
        let columns = [
            "NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA",
        ];
        let mut model = std::collections::HashMap::new();
        for line in REFERENCE.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            for (state, next) in columns.iter().zip(&cells[2..]) {
                let next = columns.iter().find(|c| *c == next).unwrap();
                model.insert((cells[0].to_owned(), cells[1].to_owned(), *state), *next);
            }
        }
        assert_eq!(model.len(), 3 * 4 * 11);
        model
    }

    fn short(state: TcpState) -> &'static str {
        [
            "NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA",
        ][state as usize]
    }

    proptest::proptest! {
        /// Random event sequences in random directions walk the same states in the
        /// implementation and in the reference model.
        #[test]
        fn transitions_match_the_reference_model(
            steps in proptest::collection::vec((0usize..3, 0usize..4), 1..64)
        ) {
            let model = reference_model();
            let dirs = [(Direction::Input, "INPUT"), (Direction::Output, "OUTPUT"), (Direction::InputOnly, "INPUT_ONLY")];
            let events = [(TcpEvent::Syn, "syn"), (TcpEvent::Fin, "fin"), (TcpEvent::Ack, "ack"), (TcpEvent::Rst, "rst")];
            let mut state = TcpState::None;
            let mut expected = "NO";
            for (d, e) in steps {
                let (dir, dir_name) = dirs[d];
                let (event, event_name) = events[e];
                state = next_state(state, dir, event);
                expected = model[&(dir_name.to_owned(), event_name.to_owned(), expected)];
                proptest::prop_assert_eq!(short(state), expected);
            }
        }
    }

    #[test]
    fn every_cell_matches_the_reference() {
        let model = reference_model();
        for ((table, event, from), to) in &model {
            let dir = match table.as_str() {
                "INPUT" => Direction::Input,
                "OUTPUT" => Direction::Output,
                _ => Direction::InputOnly,
            };
            let ev = match event.as_str() {
                "syn" => TcpEvent::Syn,
                "fin" => TcpEvent::Fin,
                "ack" => TcpEvent::Ack,
                _ => TcpEvent::Rst,
            };
            let state = *TcpState::ALL.iter().find(|s| short(**s) == *from).unwrap();
            assert_eq!(
                short(next_state(state, dir, ev)),
                *to,
                "{table} {event} {from}"
            );
        }
    }

    #[test]
    fn defaults_are_ipvs_defaults() {
        let t = Timeouts::default();
        assert_eq!(t.tcp(ES), Duration::from_secs(900));
        assert_eq!(t.tcp(FW), Duration::from_secs(120));
        assert_eq!(t.udp(), Duration::from_secs(300));
        assert!(t.validate().is_ok());
    }
}
